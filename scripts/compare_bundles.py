"""Compare model bundles on our own labelled rounds of real comments, threshold-free and at each
bundle's thresholds, on exactly the same rows.

Usage:
    .venv/bin/python scripts/compare_bundles.py models/default models/mine [--whole real_v8.jsonl]
        [--eval ../shared/data/rednote_dev.jsonl] [--annotations data/annotations] [--corpora ../shared/data]

Per round (`data/annotations/real_v*.jsonl`, text joined from the corpora folder) it scores the
round's test split, or every row with `--whole FILE` (a round no recipe trains on), and prints
macro-F1 at the bundle's thresholds, the mean PR-AUC over the tags with at least 5 positives, and
hostile's PR-AUC. Builds of one recipe differ mostly in their thresholds: compare recipes on the
PR-AUC columns, over several builds.

Then, per tag, the PR-AUC of all those rows pooled (plus `--eval FILE` sets, e.g. rednote_dev) and
each later bundle's difference from the first with a 95% paired bootstrap interval (the same
resampled comments for both bundles): an interval that holds 0 means these rows do not tell the two
apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from belonging import Tagger  # noqa: E402
from training.config import LABELS  # noqa: E402
from training.data import Row, load_rows  # noqa: E402
from training.metrics import bootstrap_interval, multilabel_metrics  # noqa: E402
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


def score_all(bundles: list[Path], texts: list[str]) -> dict[str, tuple[list[dict[str, float]], dict[str, float]]]:
    """{bundle: (scores of every text, thresholds)}: each bundle scores the same texts once."""
    out = {}
    for bundle in bundles:
        tagger = Tagger.load(bundle)
        out[str(bundle)] = ([s.scores for s in tagger.score(texts)], tagger.thresholds)
    return out


def compare(scored: dict, rounds: dict[str, list[Row]]) -> dict[str, dict[str, dict[str, float]]]:
    """{bundle: {round: figures}} from `score_all` over the rounds' rows, in order."""
    out = {}
    for bundle, (scores, thresholds) in scored.items():
        rest = iter(scores)
        out[bundle] = {
            name: round_figures(rows, [next(rest) for _ in rows], thresholds) for name, rows in rounds.items()
        }
    return out


def pr_auc_gain(truth: np.ndarray, first: np.ndarray, second: np.ndarray):
    """rows -> PR-AUC of `second` minus that of `first` on those rows (0 where a class is missing)."""

    def gain(rows: np.ndarray) -> float:
        if not 0 < truth[rows].sum() < len(rows):
            return 0.0
        return float(
            average_precision_score(truth[rows], second[rows]) - average_precision_score(truth[rows], first[rows])
        )

    return gain


def paired(scored: dict, pools: dict[str, list[Row]], resamples: int = 1000) -> list[str]:
    """Per pool and tag: pooled PR-AUC of the first bundle, and each other bundle's difference from it
    with a 95% paired bootstrap interval over the pool's comments."""

    names = list(scored)
    lines = ["\npooled PR-AUC, and the difference from the first bundle [95% paired bootstrap interval]"]
    start = 0
    for pool, rows in pools.items():
        y = np.array([row.label_vector(LABELS) for row in rows])
        probs = {b: np.array([[s[t] for t in LABELS] for s in scored[b][0][start : start + len(rows)]]) for b in names}
        start += len(rows)
        for t, tag in enumerate(LABELS):
            known = y[:, t] >= 0
            truth = y[known, t]
            if truth.sum() < MIN_POSITIVES:
                continue
            first = probs[names[0]][known, t]
            cells = [f"{average_precision_score(truth, first):.3f}"]
            for other in names[1:]:
                second = probs[other][known, t]
                gain = pr_auc_gain(truth, first, second)
                low, high = bootstrap_interval(gain, len(truth), resamples=resamples)
                cells.append(f"{gain(np.arange(len(truth))):+.3f} [{low:+.3f}, {high:+.3f}]")
            lines.append(f"{pool:24s}{tag:10s}{int(truth.sum()):5d} positives  " + "  ".join(cells))
    return lines


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
    parser.add_argument("--eval", action="append", default=[], type=Path, help="a labelled file, pooled on its own")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of the paired intervals")
    args = parser.parse_args(argv)
    if not args.corpora.is_dir():
        parser.error(f"{args.corpora}: no corpora folder (the rounds' text comes from it); pass --corpora DIR")
    for path in args.eval:
        if not path.is_file():
            parser.error(f"{path}: no such labelled file")
    rounds = load_rounds(args.annotations, args.corpora, set(args.whole))
    pools = {"rounds (pooled)": [row for rows in rounds.values() for row in rows]}
    pools |= {path.name: load_rows([path], strict=True).rows for path in args.eval}
    scored = score_all(args.bundles, [row.text for rows in pools.values() for row in rows])
    text = render(compare(scored, rounds), rounds)
    if len(args.bundles) > 1:
        text += "\n" + "\n".join(paired(scored, pools, args.resamples))
    print(text)
    return text


if __name__ == "__main__":
    main()
