"""Compare model bundles on our own labelled rounds of real comments, threshold-free and at each
bundle's thresholds, on exactly the same rows.

Usage:
    .venv/bin/python scripts/compare_bundles.py models/default models/mine [--whole real_v8.jsonl]
        [--annotations data/annotations] [--corpora ../shared/data]

Per round (`data/annotations/real_v*.jsonl`, text joined from the corpora folder) it scores the
round's test split, or every row with `--whole FILE` (a round no recipe trains on), and prints
macro-F1 at the bundle's thresholds, the mean PR-AUC over the tags with at least 5 positives, and
hostile's PR-AUC. Builds of one recipe differ mostly in their thresholds: compare recipes on the
PR-AUC columns, over several builds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from belonging import Tagger  # noqa: E402
from training.config import LABELS  # noqa: E402
from training.data import Row  # noqa: E402
from training.metrics import multilabel_metrics  # noqa: E402
from training.sources import read_annotations  # noqa: E402

MIN_POSITIVES = 5  # below this a tag's PR-AUC is one or two comments' luck


def load_rounds(folder: Path, corpora: Path, whole: set[str]) -> dict[str, list[Row]]:
    rounds = {}
    for path in sorted(folder.glob("real_v*.jsonl"), key=lambda p: int(p.stem.split("_v")[1])):
        rows, _ = read_annotations(path, corpora, path.stem)
        rounds[path.stem + (" (all)" if path.name in whole else "")] = [
            row for row in rows if path.name in whole or row.split == "test"
        ]
    return rounds


def round_figures(rows: list[Row], scores: list[dict[str, float]], thresholds: dict[str, float]) -> dict[str, float]:
    """The model card's metrics (training/metrics.py) on one round, reduced to three figures."""
    y = np.array([row.label_vector(LABELS) for row in rows])
    probs = np.array([[s[tag] for tag in LABELS] for s in scores])
    report = multilabel_metrics(y, probs, LABELS, [thresholds[tag] for tag in LABELS])
    pr_auc = {tag: m["pr_auc"] for tag, m in report["tags"].items() if m["support"] >= MIN_POSITIVES}
    return {
        "macro_f1": report["macro_f1"],
        "mean_pr_auc": float(np.mean(list(pr_auc.values()))) if pr_auc else float("nan"),
        "hostile_pr_auc": pr_auc.get("hostile", float("nan")),
    }


def compare(bundles: list[Path], rounds: dict[str, list[Row]]) -> dict[str, dict[str, dict[str, float]]]:
    """{bundle: {round: figures}}, each bundle scoring every round's rows once."""
    out = {}
    texts = [row.text for rows in rounds.values() for row in rows]
    for bundle in bundles:
        tagger = Tagger.load(bundle)
        scored = iter([s.scores for s in tagger.score(texts)])
        thresholds = tagger.thresholds
        out[str(bundle)] = {
            name: round_figures(rows, [next(scored) for _ in rows], thresholds) for name, rows in rounds.items()
        }
    return out


def render(results: dict[str, dict[str, dict[str, float]]], rounds: dict[str, list[Row]]) -> str:
    columns = (("macro_f1", "macro-F1"), ("mean_pr_auc", "mean PR-AUC"), ("hostile_pr_auc", "hostile PR-AUC"))
    lines = []
    for key, title in columns:
        lines.append(f"\n{title}")
        lines.append(f"{'round':24s}{'rows':>6s}" + "".join(f"{Path(b).name[-14:]:>16s}" for b in results))
        for name, rows in rounds.items():
            cells = "".join(f"{results[b][name][key]:16.3f}" for b in results)
            lines.append(f"{name:24s}{len(rows):6d}{cells}")
        means = "".join(f"{np.nanmean([r[key] for r in results[b].values()]):16.3f}" for b in results)
        lines.append(f"{'mean':24s}{'':6s}{means}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--annotations", type=Path, default=Path("data/annotations"))
    parser.add_argument("--corpora", type=Path, default=Path("../shared/data"))
    parser.add_argument("--whole", action="append", default=[], help="a round file scored whole (never trained on)")
    args = parser.parse_args(argv)
    if not args.corpora.is_dir():
        parser.error(f"{args.corpora}: no corpora folder (the rounds' text comes from it); pass --corpora DIR")
    rounds = load_rounds(args.annotations, args.corpora, set(args.whole))
    text = render(compare(args.bundles, rounds), rounds)
    print(text)
    return text


if __name__ == "__main__":
    main()
