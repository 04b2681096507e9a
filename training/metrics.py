"""Metrics for multi-label tagging: per-tag P/R/F1, ROC-AUC, PR-AUC, ECE, threshold search.

numpy and scikit-learn only: the evaluation of a served bundle must not need torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| of equal-width probability bins, weighted by bin size."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            error += members.mean() * abs(y[members].mean() - p[members].mean())
    return float(error)


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | int | None]:
    y = np.asarray(y, dtype=int)
    predicted = np.asarray(p) >= threshold
    tp = int((predicted & (y == 1)).sum())
    fp = int((predicted & (y == 0)).sum())
    fn = int((~predicted & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    both_classes = 0 < y.sum() < len(y)
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        # Undefined, not 0, when there is nothing to find (a set, language or source with no positives
        # of the tag): its false alarms show in `accuracy` and `flagged` instead.
        "f1": round(f1, 4) if tp + fn else None,
        "accuracy": round(float((predicted == (y == 1)).mean()), 4) if len(y) else None,
        "flagged": int(predicted.sum()),
        "roc_auc": round(float(roc_auc_score(y, p)), 4) if both_classes else None,
        "pr_auc": round(float(average_precision_score(y, p)), 4) if both_classes else None,
        "ece": round(expected_calibration_error(y, p), 4) if len(y) else None,
        "support": int(y.sum()),
        "n": int(len(y)),
    }


def multilabel_metrics(y: np.ndarray, probs: np.ndarray, labels: Sequence[str], thresholds: Sequence[float]) -> dict:
    """Per-tag metrics plus macro-F1 (mean over tags) for one set of rows.

    A negative entry in `y` is an unknown label (partial labels): that row is left out of that tag.
    """
    per_tag = {}
    for i, label in enumerate(labels):
        known = y[:, i] >= 0
        per_tag[label] = binary_metrics(y[known, i], probs[known, i], thresholds[i])
    defined = [float(f1) for label in labels if (f1 := per_tag[label]["f1"]) is not None]
    macro_f1 = float(np.mean(defined)) if defined else 0.0
    return {"macro_f1": round(macro_f1, 4), "n": int(len(y)), "tags": per_tag}


def best_f1_threshold(y: np.ndarray, p: np.ndarray, target_precision: float | None = None) -> float:
    """Threshold maximising F1, or the lowest one reaching `target_precision` when any does.

    Rows with an unknown label (negative y) are left out.
    """
    y, p = np.asarray(y, dtype=int), np.asarray(p)
    y, p = y[y >= 0], p[y >= 0]
    if y.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if target_precision is not None:
        reaching = np.nonzero(precision >= target_precision)[0]
        if len(reaching):
            return float(thresholds[reaching[0]])
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return float(thresholds[int(np.argmax(f1))])


def best_mean_f1_threshold(y: np.ndarray, p: np.ndarray, groups: np.ndarray, grid: int = 400) -> float:
    """The threshold maximising the mean F1 over groups (e.g. calibration sets from different
    platforms and languages), each group with positives weighing the same however large it is.

    One threshold must serve a Reddit thread with 8% hostile comments and a Weibo thread with 40%;
    maximising pooled F1 would let the largest set decide alone. Rows with unknown labels are left out.
    """
    y, p, groups = np.asarray(y, dtype=int), np.asarray(p, dtype=float), np.asarray(groups)
    known = y >= 0
    y, p, groups = y[known], p[known], groups[known]
    members = [groups == g for g in np.unique(groups) if y[groups == g].sum() > 0]
    if not members:
        return 0.5
    candidates = np.unique(np.quantile(p, np.linspace(0.0, 1.0, grid)))
    best, best_score = 0.5, -1.0
    for threshold in candidates:
        predicted = p >= threshold
        scores = []
        for m in members:
            tp = float((predicted[m] & (y[m] == 1)).sum())
            flagged, positives = float(predicted[m].sum()), float(y[m].sum())
            scores.append(2 * tp / (flagged + positives) if flagged + positives else 0.0)
        score = float(np.mean(scores))
        if score > best_score:
            best, best_score = float(threshold), score
    return best


def decisions_macro_f1(y: np.ndarray, decided: np.ndarray) -> float:
    """Macro-F1 of fixed 0/1 decisions, as `multilabel_metrics` counts it: unknown labels (< 0) left
    out per tag, a tag with nothing to find left out of the mean."""
    known, positive = y >= 0, y == 1
    tp = (decided & positive).sum(axis=0)
    wrong = (decided & known & ~positive).sum(axis=0) + (~decided & positive).sum(axis=0)
    defined = positive.sum(axis=0) > 0
    return float(np.mean(2 * tp[defined] / (2 * tp[defined] + wrong[defined]))) if defined.any() else 0.0


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], n: int, *, resamples: int = 1000, level: float = 0.95, seed: int = 13
) -> tuple[float, float]:
    """Percentile bootstrap over the n rows of a set: `statistic(indices)` on sets drawn with
    replacement. The range a figure moves by which comments happened to be in the set, before any
    difference between models: two builds whose figures sit inside each other's range are not told
    apart by this set."""
    from scipy.stats import bootstrap

    result = bootstrap(
        (np.arange(n),),
        statistic,
        vectorized=False,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        random_state=seed,
    )
    return round(float(result.confidence_interval.low), 4), round(float(result.confidence_interval.high), 4)
