"""Evaluate a bundle through serving's own predictor: the served path, not torch.

Usage: `belong evaluate --bundle models/default --data ../shared/data/rednote_dev.jsonl [--json]`

Reports per tag precision, recall, F1, ROC-AUC, PR-AUC and expected calibration error, macro-F1,
and the same per language.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table

from serving.engine.predictor import Predictor
from training.data import Row
from training.metrics import multilabel_metrics


def evaluate_rows(predictor: Predictor, rows: Sequence[Row]) -> tuple[dict, np.ndarray]:
    """Overall and per-language metrics at the bundle's thresholds, plus the probabilities."""
    labels = predictor.labels
    thresholds = list(predictor.thresholds)
    probs = predictor.probabilities([r.text for r in rows])
    y = np.array([r.label_vector(labels) for r in rows], dtype=int).reshape(len(rows), len(labels))
    report = {"overall": multilabel_metrics(y, probs, labels, thresholds), "by_lang": {}}
    langs = np.array([r.lang for r in rows])
    for lang in sorted(set(langs)):
        members = langs == lang
        report["by_lang"][lang] = multilabel_metrics(y[members], probs[members], labels, thresholds)
    return report, probs


def render(report: dict, title: str, console: Console | None = None) -> None:
    console = console or Console()
    overall = report["overall"]
    table = Table(title=f"{title}: {overall['n']} rows, macro-F1 {overall['macro_f1']:.3f}")
    for column in ("tag", "n", "support", "precision", "recall", "F1", "accuracy", "ROC-AUC", "PR-AUC", "ECE"):
        table.add_column(column, justify="left" if column == "tag" else "right")
    for tag, m in overall["tags"].items():
        table.add_row(
            tag,
            str(m["n"]),
            str(m["support"]),
            *(_fmt(m.get(k)) for k in ("precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc", "ece")),
        )
    console.print(table)
    by_lang = Table(title=f"{title}: F1 per language")
    by_lang.add_column("lang")
    by_lang.add_column("rows", justify="right")
    tags = list(overall["tags"])
    for tag in tags:
        by_lang.add_column(f"{tag} F1 (n+)", justify="right")
    by_lang.add_column("macro-F1", justify="right")
    for lang, m in report["by_lang"].items():
        cells = [f"{_fmt(m['tags'][t]['f1'])} ({m['tags'][t]['support']})" for t in tags]
        by_lang.add_row(lang, str(m["n"]), *cells, _fmt(m["macro_f1"]))
    console.print(by_lang)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def crossfit_report(
    y: np.ndarray, probs: np.ndarray, labels: Sequence[str], ids: Sequence[str], seed: int = 13
) -> dict:
    """Honest figures for a set that also picks thresholds: split it in two halves by id; each half is
    scored at the thresholds that maximise F1 on the other half, and the pooled predictions measured."""
    from training.data import stable_hash
    from training.metrics import best_f1_threshold, binary_metrics, bootstrap_interval, decisions_macro_f1

    half = np.array([int(stable_hash(i, seed), 16) % 2 for i in ids])
    per_tag = {}
    decided = np.zeros(y.shape, dtype=bool)
    for t, label in enumerate(labels):
        known = y[:, t] >= 0
        predicted = decided[:, t]  # a view: filled in place
        thresholds = []
        for side in (0, 1):
            pick, apply = known & (half != side), known & (half == side)
            threshold = best_f1_threshold(y[pick, t], probs[pick, t])
            thresholds.append(round(threshold, 4))
            predicted[apply] = probs[apply, t] >= threshold
        # binary_metrics at 0.5 on 0/1 "probabilities" gives P/R/F1 of the cross-fitted decisions.
        m = binary_metrics(y[known, t], predicted[known].astype(float), 0.5)
        per_tag[label] = {k: m[k] for k in ("precision", "recall", "f1", "support", "n")} | {"thresholds": thresholds}
    defined = [m["f1"] for m in per_tag.values() if m["f1"] is not None]
    interval = (
        bootstrap_interval(lambda rows: decisions_macro_f1(y[rows], decided[rows]), len(y)) if len(y) > 1 else None
    )
    return {
        "macro_f1": round(float(np.mean(defined)), 4) if defined else 0.0,
        # 95% of the sets of this size drawn from the same comments fall here (bootstrap over comments)
        "macro_f1_interval": list(interval) if interval else None,
        "tags": per_tag,
    }


def challenge_report(
    rows: Sequence[Row],
    probs: np.ndarray,
    labels: Sequence[str],
    thresholds: Sequence[float],
    source: str | None = "challenge",
) -> dict:
    """Functional tests: per case type and language, the share of rows whose hostile decision is
    right (accuracy on not-hostile types, recall on hostile ones), at the bundle's threshold.
    Rows of `source` with a case type (`kind`) count; `source=None` takes any row with one."""
    h = list(labels).index("hostile")
    cells: dict[str, dict[str, list[int]]] = {}
    expected: dict[str, int] = {}
    for row, p in zip(rows, probs, strict=True):
        if (source is not None and row.source != source) or not row.kind or row.labels.get("hostile") is None:
            continue
        want = int(row.labels["hostile"] or 0)
        expected[row.kind] = want
        cells.setdefault(row.kind, {}).setdefault(row.lang, []).append(int((p[h] >= thresholds[h]) == bool(want)))
    table = {
        case: {lang: round(float(np.mean(v)), 3) for lang, v in sorted(by_lang.items())}
        for case, by_lang in cells.items()
    }
    overall = {
        case: round(float(np.mean([x for v in by_lang.values() for x in v])), 3) for case, by_lang in cells.items()
    }
    counts = {case: sum(len(v) for v in by_lang.values()) for case, by_lang in cells.items()}
    order = sorted(table, key=lambda c: (expected[c], c))
    worst = {case: min(table[case].values()) for case in order}
    return {
        "cases": order,
        "hostile_case": {c: expected[c] for c in order},
        "table": table,
        "overall": overall,
        "counts": counts,
        "summary": {"overall": overall, "worst_language": worst},
    }


def render_challenge(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    langs = sorted({lang for case in report["cases"] for lang in report["table"][case]})
    table = Table(title="held-out challenge sets: accuracy of the hostile decision per case type and language")
    table.add_column("case")
    table.add_column("hostile?")
    table.add_column("all", justify="right")
    for lang in langs:
        table.add_column(lang, justify="right")
    for case in report["cases"]:
        row = report["table"][case]
        table.add_row(
            case,
            "yes" if report["hostile_case"][case] else "no",
            f"{report['overall'][case]:.2f}",
            *(f"{row[lang]:.2f}" if lang in row else "" for lang in langs),
        )
    console.print(table)
