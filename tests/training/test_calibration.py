import numpy as np
import pytest

from training.calibrate import calibrate, fit_temperature
from training.metrics import best_f1_threshold, binary_metrics, expected_calibration_error


def test_temperature_recovers_known_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-true_logits))).astype(float)
    # An overconfident model: logits 3x too large. The fitted temperature should undo it.
    assert fit_temperature(true_logits * 3, y) == pytest.approx(3.0, rel=0.08)


def test_calibration_lowers_ece_and_picks_thresholds():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(-1, 2, (5000, 3))
    y = (rng.random((5000, 3)) < 1 / (1 + np.exp(-true_logits))).astype(float)
    result = calibrate(true_logits * 4, y, ["welcoming", "curious", "hostile"])
    before = expected_calibration_error(y[:, 0], 1 / (1 + np.exp(-true_logits[:, 0] * 4)))
    calibrated = 1 / (1 + np.exp(-true_logits[:, 0] * 4 / result["temperatures"]["welcoming"]))
    assert expected_calibration_error(y[:, 0], calibrated) < before / 2
    assert set(result["thresholds"]) == {"welcoming", "curious", "hostile"}
    assert all(0 < t < 1 for t in result["thresholds"].values())


def test_threshold_for_target_precision():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert best_f1_threshold(y, p) == pytest.approx(0.4)
    assert best_f1_threshold(y, p, target_precision=1.0) == pytest.approx(0.6)


def test_binary_metrics_by_hand():
    m = binary_metrics(np.array([1, 1, 0, 0]), np.array([0.9, 0.2, 0.8, 0.1]), 0.5)
    assert (m["precision"], m["recall"], m["f1"], m["support"]) == (0.5, 0.5, 0.5, 2)
    assert m["roc_auc"] == 0.75


def test_f1_is_undefined_without_positives_and_left_out_of_macro():
    from training.metrics import multilabel_metrics

    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.2], [0.8, 0.3]])
    report = multilabel_metrics(y, p, ["a", "b"], [0.5, 0.5])
    assert report["tags"]["b"]["f1"] is None and report["tags"]["a"]["f1"] == 1.0
    assert report["macro_f1"] == 1.0


def test_mean_f1_threshold_weighs_each_set_the_same_however_large():
    from training.metrics import best_f1_threshold, best_mean_f1_threshold

    # A large set cleanly separated at 0.5-0.6, and a small one (another platform) whose negatives
    # score 0.55-0.7: pooled F1 barely notices the small set's false alarms, the mean F1 does.
    rng = np.random.default_rng(0)
    big_y = np.r_[np.ones(500), np.zeros(500)]
    big_p = np.r_[rng.uniform(0.6, 0.9, 500), rng.uniform(0.0, 0.5, 500)]
    small_y = np.r_[np.ones(5), np.zeros(20)]
    small_p = np.r_[rng.uniform(0.8, 0.9, 5), rng.uniform(0.55, 0.7, 20)]
    y, p = np.r_[big_y, small_y], np.r_[big_p, small_p]
    groups = np.array(["big"] * len(big_y) + ["small"] * len(small_y))
    assert best_f1_threshold(y, p) < 0.61 and best_mean_f1_threshold(y, p, groups) > 0.69
    # Unknown labels are left out, not read as 0: with the small set's positives unknown it has
    # nothing to find, drops out, and the big set decides alone again.
    unknown = np.r_[big_y, [-1] * 5, np.zeros(20)]
    assert best_mean_f1_threshold(unknown, p, groups) < 0.61


def test_decisions_macro_f1_counts_as_the_card_does():
    from training.metrics import decisions_macro_f1, multilabel_metrics

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(300, 3))
    y[rng.random((300, 3)) < 0.2] = -1  # partial labels
    y[:, 2] = np.where(y[:, 2] == 1, 0, y[:, 2])  # a tag with nothing to find: left out of the mean
    decided = rng.random((300, 3)) < 0.4
    card = multilabel_metrics(y, decided.astype(float), ["a", "b", "c"], [0.5, 0.5, 0.5])
    assert decisions_macro_f1(y, decided) == pytest.approx(card["macro_f1"], abs=1e-4)


def test_bootstrap_interval_holds_the_figure_and_narrows_with_more_comments():
    from training.metrics import bootstrap_interval, decisions_macro_f1

    rng = np.random.default_rng(4)

    def interval(n):
        y = rng.integers(0, 2, size=(n, 1))
        decided = np.where(rng.random((n, 1)) < 0.8, y == 1, y == 0)  # right 80% of the time
        figure = decisions_macro_f1(y, decided)
        low, high = bootstrap_interval(lambda rows: decisions_macro_f1(y[rows], decided[rows]), n)
        assert low < figure < high
        return high - low

    small, large = interval(100), interval(1600)
    assert large < small / 2  # about 1/sqrt(16) as wide: sampling noise, not a fixed margin
    assert 0.02 < large < 0.1
