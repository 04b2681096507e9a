"""Calibrate on dev: per-tag temperature scaling, then a per-tag decision threshold.

Temperature first, threshold second: thresholds are picked on the calibrated probabilities the
server will output, so a threshold of 0.5 means roughly "more likely than not".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from training.metrics import best_f1_threshold, best_mean_f1_threshold, multilabel_metrics


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # log(1 + e^z) computed stably; BCE = softplus(z) - y*z
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.05, 20] minimising dev log-loss of sigmoid(logit / T)."""
    if y.min() == y.max():
        return 1.0  # one class only: nothing to calibrate against
    result = minimize_scalar(
        lambda log_t: _nll(logits, y, float(np.exp(log_t))), bounds=(np.log(0.05), np.log(20.0)), method="bounded"
    )
    return round(float(np.exp(result.x)), 6)


def calibrate(
    logits: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    hostile_target_precision: float | None = None,
    groups: np.ndarray | None = None,
) -> dict:
    """Per tag, on the rows that label it (negative y = unknown): temperature, then threshold.

    With `groups` (one name per row: the calibration set it came from), the threshold maximises the
    mean F1 over the sets instead of the pooled F1, so no single platform or language decides alone.
    """
    temperatures, thresholds = {}, {}
    for i, label in enumerate(labels):
        known = y[:, i] >= 0
        temperature = fit_temperature(logits[known, i], y[known, i]) if known.any() else 1.0
        probs = 1 / (1 + np.exp(-logits[known, i] / temperature))
        target = hostile_target_precision if label == "hostile" else None
        temperatures[label] = temperature
        if groups is not None and target is None:
            threshold = best_mean_f1_threshold(y[known, i], probs, np.asarray(groups)[known])
        else:
            threshold = best_f1_threshold(y[known, i], probs, target)
        thresholds[label] = round(threshold, 6)
    probs = 1 / (1 + np.exp(-logits / np.array([temperatures[label] for label in labels])))
    report = multilabel_metrics(y, probs, labels, [thresholds[label] for label in labels])
    if groups is not None:
        names = np.asarray(groups)
        report["by_set"] = {
            str(g): multilabel_metrics(y[names == g], probs[names == g], labels, [thresholds[t] for t in labels])
            for g in np.unique(names)
        }
    return {"temperatures": temperatures, "thresholds": thresholds, "dev": report}
