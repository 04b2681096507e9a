"""Give every challenge row a split: both rows of a minimal pair go to `test` (held out, never trained
on) or `train`. Pairs are taken in the order of a hash of their id, each going to the split its two
case types (per language) lack most, so every case type keeps about half its rows held out.
A row that already has a split keeps it, so adding rows never moves old ones.

Usage: python scripts/challenge_split.py data/challenge/*.jsonl   (rewrites the files in place)
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path


def assign(rows: list[dict]) -> None:
    """Pairs in hash order; each goes where its two case types (per language) most lack rows, so
    every case type, hostile or not, ends up with about half its rows held out."""
    fixed = {r["pair"]: r["split"] for r in rows if r.get("split")}
    cases: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        cases.setdefault(row["pair"], []).append((row["lang"], row["case"]))
    target = {key: n / 2 for key, n in Counter(key for members in cases.values() for key in members).items()}
    placed = {"test": Counter(), "train": Counter()}
    for pair, split in fixed.items():
        placed[split].update(cases[pair])
    for pair in sorted(set(cases) - set(fixed), key=lambda p: hashlib.sha256(f"challenge:{p}".encode()).hexdigest()):
        need = {split: sum(target[key] - placed[split][key] for key in cases[pair]) for split in placed}
        split = "test" if need["test"] >= need["train"] else "train"
        fixed[pair] = split
        placed[split].update(cases[pair])
    for row in rows:
        row["split"] = fixed[row["pair"]]


def main(paths: list[str]) -> None:
    for name in paths:
        path = Path(name)
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        assign(rows)
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path}: {len(rows)} rows, {sum(r['split'] == 'test' for r in rows)} held out")


if __name__ == "__main__":
    main(sys.argv[1:])
