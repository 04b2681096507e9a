"""Shared checks for the seed corpus: loading, coverage figures, near-duplicate detection.

Used by tests/test_seeds.py (the gates) and scripts/seeds_table.py (the README table).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
from scipy import sparse

from serving.labels import TAGS

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def load_seeds(folder: Path = SEEDS) -> dict[str, list[dict]]:
    """lang -> rows, in file order."""
    return {
        path.stem: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for path in sorted(folder.glob("*.jsonl"))
    }


COUNTS = (*TAGS, "neutral", "welcoming+curious", "hard case (kind)")


def counts(rows: list[dict]) -> Counter:
    """Rows per tag, neutral, welcoming+curious and with a hard-case kind."""
    c: Counter = Counter()
    for row in rows:
        for tag in TAGS:
            c[tag] += row[tag]
        c["neutral"] += not any(row[tag] for tag in TAGS)
        c["welcoming+curious"] += bool(row["welcoming"] and row["curious"])
        c["hard case (kind)"] += bool(row.get("kind"))
    return c


def coverage(rows: list[dict]) -> dict[str, float]:
    c = counts(rows)
    return {key: c[key] / len(rows) for key in COUNTS}


def normalize(text: str) -> str:
    """Lowercase, NFKC, no whitespace or punctuation: what a template in disguise cannot hide behind."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch)[0] in "PZ"))


def ngrams(text: str, n: int = 5) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)} if len(text) >= n else {text} if text else set()


def near_duplicates(texts: list[str], threshold: float = 0.8) -> list[tuple[int, int, float]]:
    """Pairs with character 5-gram Jaccard >= threshold, via one sparse product (all pairs at once)."""
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        for gram in ngrams(normalize(text)):
            rows.append(i)
            cols.append(vocab.setdefault(gram, len(vocab)))
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(texts), len(vocab)))
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    shared = sparse.triu(matrix @ matrix.T, k=1).tocoo()
    union = sizes[shared.row] + sizes[shared.col] - shared.data
    jaccard = shared.data / np.maximum(union, 1)
    hits = jaccard >= threshold
    found = zip(shared.row[hits].tolist(), shared.col[hits].tolist(), jaccard[hits].round(3).tolist(), strict=True)
    return sorted(found)


# Country, nationality and city words whose swap would make a "new" row out of an old one.
PLACE_WORDS = re.compile(
    r"america\w*|american\w*|usa|us|uk|china|chinese|japan\w*|korea\w*|india\w*|mexic\w*|brazil\w*|"
    r"canad\w*|germany|german\w*|france|french|ital\w*|spain|spanish|russia\w*|turk\w*|vietnam\w*|"
    r"indonesia\w*|philippin\w*|filipin\w*|thai\w*|egypt\w*|saudi\w*|arab\w*|"
    r"美国|中国|日本|韩国|英国|法国|德国|印度|俄罗斯|巴西|墨西哥|加拿大|越南|泰国|美國|中國|韓國"
)


def masked(text: str) -> str:
    """Names, places and numbers masked: two rows equal here differ only by a swapped name or place."""
    text = re.sub(r"@\w+", "@", text)
    text = re.sub(r"\b[A-Z][a-z]+\b", "N", text)  # capitalised Latin-script words: names, places
    text = normalize(text)
    text = PLACE_WORDS.sub("C", text)
    return re.sub(r"\d+", "0", text)


def swapped_name_pairs(texts: list[str], min_length: int = 12) -> list[tuple[int, int]]:
    seen: dict[str, int] = {}
    pairs = []
    for i, text in enumerate(texts):
        key = masked(text)
        if len(key) < min_length:
            continue  # very short rows ("welcome!!") are near-equal by nature; the Jaccard gate covers them
        if key in seen:
            pairs.append((seen[key], i))
        else:
            seen[key] = i
    return pairs
