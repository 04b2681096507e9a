"""Packed against padded batches on one bundle, one core: what packing buys per batch shape.

Usage:
    .venv/bin/python bench/pack_bench.py --bundle models/default [--texts ../shared/data/xlmt_tweets.jsonl]

Needs a packed bundle (training's default export). Scores the same real comments as random groups
of 4, 8 and 32 (what concurrent single comments give each model thread) and as length-sorted batches of
32 (a backlog), each way: one comment per row (the padded layout, the baseline, measured in the
same run) and `plan_packs` with several attention spans (the planner's cost constant). Prints
texts/s and the share of padded tokens; the best of three passes per cell.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.engine.packing import ATTENTION_SPAN, plan_packs  # noqa: E402
from serving.engine.predictor import Encoded, Predictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("models/default"))
    parser.add_argument("--texts", type=Path, default=Path("../shared/data/xlmt_tweets.jsonl"))
    parser.add_argument("--n", type=int, default=800)
    args = parser.parse_args()
    if not args.texts.is_file():
        sys.exit(f"{args.texts} not found: give --texts FILE (JSON lines with a `text` field)")
    predictor = Predictor.from_path(args.bundle, threads=1)
    if not predictor.packed:
        sys.exit(f"{args.bundle} takes padded batches only: export it with packed = true")
    with args.texts.open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line, _ in zip(handle, range(args.n), strict=False)]
    encoded = predictor.encode(texts)
    rows = [e.ids for e in encoded]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows)).tolist()
    by_length = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    shapes = {
        "random groups of 4": [order[i : i + 4] for i in range(0, len(order), 4)],
        "random groups of 8": [order[i : i + 8] for i in range(0, len(order), 8)],
        "random groups of 32": [order[i : i + 32] for i in range(0, len(order), 32)],
        "sorted batches of 32": [by_length[i : i + 32] for i in range(0, len(by_length), 32)],
    }
    spans = sorted({100.0, 200.0, ATTENTION_SPAN, 600.0})
    print(f"{len(rows)} comments from {args.texts.name}; bundle {args.bundle}; one onnxruntime thread")
    print(f"{'batches':24}{'padded tokens':>15}{'one per row':>14}" + "".join(f"{f'span {s:.0f}':>12}" for s in spans))
    for name, batches in shapes.items():
        groups = [[encoded[i] for i in batch] for batch in batches]
        padded_share = 1 - sum(map(len, rows)) / sum(len(batch) * max(len(rows[i]) for i in batch) for batch in batches)
        cells = [rate(predictor, groups, lambda g: [[i] for i in range(len(g))])]
        for span in spans:
            cells.append(rate(predictor, groups, lambda g, span=span: plan_packs([len(e.ids) for e in g], span)))
        print(f"{name:24}{padded_share:>14.0%} " + "".join(f"{c:>12.1f}" for c in cells))
    print(f"texts/s; the planner's span today: {ATTENTION_SPAN:.0f}")


def rate(predictor: Predictor, groups: list[list[Encoded]], layout) -> float:
    plans = [layout(g) for g in groups]
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for group, packs in zip(groups, plans, strict=True):
            predictor.logits(group, packs)
        best = max(best, sum(map(len, groups)) / (time.perf_counter() - started))
    return best


if __name__ == "__main__":
    main()
