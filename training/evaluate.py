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
    for column in ("tag", "support", "precision", "recall", "F1", "ROC-AUC", "PR-AUC", "ECE"):
        table.add_column(column, justify="left" if column == "tag" else "right")
    for tag, m in overall["tags"].items():
        table.add_row(tag, str(m["support"]), *(_fmt(m[k]) for k in ("precision", "recall", "f1", "roc_auc",
                                                                    "pr_auc", "ece")))
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
