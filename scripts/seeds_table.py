"""Print (or write into seeds/README.md) the rows per language x tag x kind tables.

Usage: python scripts/seeds_table.py [--write seeds/README.md]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.seedlib import COUNTS, counts, load_seeds  # noqa: E402

START, END = "<!-- seeds-table:start -->", "<!-- seeds-table:end -->"


def render_tables(seeds: dict[str, list[dict]]) -> str:
    lines = [
        "| lang | rows | welcoming | curious | hostile | neutral | welcoming+curious | with a kind |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total: Counter = Counter()
    for lang, rows in seeds.items():
        c = counts(rows)
        c["rows"] = len(rows)
        total.update(c)
        lines.append(f"| {lang} | " + " | ".join(str(c[k]) for k in ("rows", *COUNTS)) + " |")
    lines.append("| **all** | " + " | ".join(f"**{total[k]}**" for k in ("rows", *COUNTS)) + " |")
    kinds = Counter(row["kind"] for rows in seeds.values() for row in rows if row.get("kind"))
    common = [k for k, n in kinds.most_common() if n >= 10]
    lines += [
        "",
        "Rows per language and hard-case kind (kinds used 10+ times; the rest under *other*):",
        "",
        "| lang | " + " | ".join(common) + " | other |",
        "|---|" + "---:|" * (len(common) + 1),
    ]
    for lang, rows in seeds.items():
        c = Counter(row["kind"] for row in rows if row.get("kind"))
        other = sum(n for k, n in c.items() if k not in common)
        lines.append(f"| {lang} | " + " | ".join(str(c[k]) for k in common) + f" | {other} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", type=Path, help="README to update between the seeds-table markers")
    args = parser.parse_args()
    table = render_tables(load_seeds())
    if not args.write:
        print(table)
        return
    text = args.write.read_text(encoding="utf-8")
    block = f"{START}\n{table}\n{END}"
    text, n = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if n != 1:
        sys.exit(f"{args.write}: markers {START} ... {END} not found")
    args.write.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
