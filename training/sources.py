"""Public corpora as training rows: how each source's own labels map to our three tags.

Usage:
    rows, skipped = read_source(source)          # a recipe.Source; rows carry source and split

None of these corpora labels all three tags. A mapper returns a label for the tags its source
decides and None for the rest: unknown, never 0 (training masks unknown tags out of the loss).
The mappings follow `../shared/data/README.md` and LABELS.md; each says why where it is not obvious.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import LABELS
from training.data import SPLITS, DataError, Row, load_rows

if TYPE_CHECKING:
    from training.recipe import Source

log = logging.getLogger(__name__)

Labels = dict[str, int | None]
Mapper = Callable[[dict[str, Any]], Labels | None]  # None: the row is not usable for any tag

UPSTREAM_SPLITS = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev", "test": "test"}


def _hostile_only(value: int | None) -> Labels | None:
    return None if value is None else {"welcoming": None, "curious": None, "hostile": value}


def map_cold(record: dict[str, Any]) -> Labels | None:
    """COLD: offensive (1) is close to our hostile; safe (0) is not hostile."""
    return _hostile_only(int(record["hostile"]))


def map_davidson(record: dict[str, Any]) -> Labels | None:
    """Davidson: hate is hostile, neither is not. `offensive` mixes attacks on people with
    profanity aimed at nobody, so it is left out rather than forced either way."""
    return _hostile_only({"hate": 1, "neither": 0}.get(record["davidson_class"]))


def map_germeval2018(record: dict[str, Any]) -> Labels | None:
    """GermEval 2018: ABUSE and INSULT are hostile; PROFANITY (swearing at nobody) and OTHER are not."""
    fine = record["raw"]["fine"]
    return _hostile_only({"ABUSE": 1, "INSULT": 1, "PROFANITY": 0, "OTHER": 0}.get(fine))


def map_korean_hate_speech(record: dict[str, Any]) -> Labels | None:
    """Korean hate speech: hate and offensive are hostile; none is not."""
    return _hostile_only({"hate": 1, "offensive": 1, "none": 0}.get(record["raw"]["hate"]))


# GoEmotions raters often miss rare emotions, so only confident directions are mapped.
# Anger and friends may or may not attack someone; disapproval and amusement are also where Reddit's
# snark lives ("good for you, do you want a cookie"): raters rarely mark it anger, so unknown too.
_GOEMO_NEGATIVE = {"anger", "annoyance", "disgust", "disapproval", "amusement", "embarrassment"}
_GOEMO_WARM = {
    "gratitude",
    "caring",
    "admiration",
    "approval",
    "love",
    "optimism",
    "joy",
    "excitement",
    "pride",
    "relief",
}
_GOEMO_QUESTIONING = {"curiosity", "confusion", "surprise", "realization"}
_QUESTION = re.compile(r"[?？]")


def map_goemotions(record: dict[str, Any]) -> Labels | None:
    """GoEmotions (real Reddit comments, 27 emotions) for curious, and for hostile = 0.

    - curious: `curiosity` is a genuine-interest label, so 1; a comment with no questioning
      emotion and no question mark is 0; a question without `curiosity` (rhetorical or not) is unknown.
    - hostile: a comment rated with a warm or questioning emotion and no negative one is 0: the
      real-register negatives our seeds lack. Neutral-only comments stay unknown: a first model taught
      they were all 0 learned to miss sarcastic put-downs that raters had called neutral or amused.
    - welcoming: warm emotions are often about things (thanks for a recipe, love this song), and
      welcoming is about people, so only comments with no warm emotion at all are 0; the rest unknown.
    """
    emotions = set(record["raw"]["emotions"])
    text = record["text"]
    if "curiosity" in emotions:
        curious: int | None = 1
    elif not emotions & _GOEMO_QUESTIONING and not _QUESTION.search(text):
        curious = 0
    else:
        curious = None
    hostile = 0 if emotions & (_GOEMO_WARM | _GOEMO_QUESTIONING) and not emotions & _GOEMO_NEGATIVE else None
    welcoming = None if emotions & _GOEMO_WARM else 0
    return {"welcoming": welcoming, "curious": curious, "hostile": hostile}


MAPPERS: dict[str, Mapper] = {
    "cold": map_cold,
    "davidson": map_davidson,
    "germeval2018": map_germeval2018,
    "korean_hate_speech": map_korean_hate_speech,
    "goemotions": map_goemotions,
}
FORMATS = ("labelled", "annotations", *MAPPERS)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, json.loads(line)


def read_mapped(
    path: Path, mapper: Mapper, source: str, split: str | None, upstream: dict[str, str] | None = None
) -> tuple[list[Row], int]:
    """Rows of one public corpus file through its mapper; rows the mapper cannot use are counted.

    A row keeps its corpus's own split (renamed through `upstream`, where "auto" means: split it
    like a corpus without splits) unless `split` forces one for the whole file.
    """
    upstream = upstream or {}
    rows, unusable = [], 0
    for number, record in _json_lines(path):
        origin = f"{path}:{number}"
        try:
            labels = mapper(record)
            text = record["text"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{origin}: not in the expected {source} format ({exc!r})") from exc
        if labels is None or all(v is None for v in labels.values()) or not isinstance(text, str) or not text.strip():
            unusable += 1
            continue
        upstream_split = UPSTREAM_SPLITS.get(str(record.get("split")))
        row_split = split or (upstream.get(upstream_split, upstream_split) if upstream_split else None)
        if row_split == "auto":
            row_split = None  # split by the stratified hash split, like a source without splits
        rows.append(
            Row(
                text=text,
                labels=labels,
                id=str(record["id"]),
                lang=str(record.get("lang") or "und"),
                source=source,
                split=row_split,
                kind=record.get("topic"),
                origin=origin,
            )
        )
    return rows, unusable


def read_annotations(path: Path, texts_root: Path, source: str) -> tuple[list[Row], int]:
    """Our own three-tag labels of public comments, committed as ids only: the text is joined from
    the corpora folder (their licences let us label them, and we never copy their text)."""
    wanted: dict[str, dict[str, Any]] = {}
    for number, record in _json_lines(path):
        if not {"id", "corpus", *LABELS} <= set(record):
            raise DataError(f"{path}:{number}: expected id, corpus and the three tags")
        wanted[str(record["id"])] = record
    texts: dict[str, dict[str, Any]] = {}
    for corpus in sorted({str(r["corpus"]) for r in wanted.values()}):
        corpus_path = texts_root / corpus
        if not corpus_path.is_file():
            raise DataError(f"{path}: labels rows of {corpus_path}, which is not there")
        for _, record in _json_lines(corpus_path):
            if str(record.get("id")) in wanted:
                texts[str(record["id"])] = record
    rows = []
    for row_id, record in wanted.items():
        if row_id not in texts:
            continue
        corpus_row = texts[row_id]
        split = record.get("split")
        labels: Labels = {t: int(record[t]) for t in LABELS}
        rows.append(
            Row(
                text=corpus_row["text"],
                labels=labels,
                id=row_id,
                lang=str(corpus_row.get("lang") or "und"),
                source=source,
                split=split if split in SPLITS else None,
                origin=f"{path}:{row_id}",
            )
        )
    return rows, len(wanted) - len(rows)


def read_source(source: Source, *, strict: bool = False) -> tuple[list[Row], int]:
    """All rows of one recipe source, each tagged with the source name. Returns (rows, unusable).

    `strict` stops at the first bad row of a labelled file, naming it, instead of skipping it."""
    if source.format == "labelled":
        report = load_rows([source.path], strict=strict)
        for row in report.rows:
            row.source = source.name
            if source.split and row.split is None:
                row.split = source.split
        return report.rows, report.skipped
    if source.format == "annotations":
        if source.texts is None:
            raise DataError(f"source {source.name!r}: format 'annotations' needs `texts` (the corpora folder)")
        rows, unusable = read_annotations(source.path, source.texts, source.name)
        if source.split:  # e.g. a labelled round kept whole as a held-out evaluation set
            for row in rows:
                row.split = source.split
        return rows, unusable
    return read_mapped(source.path, MAPPERS[source.format], source.name, source.split, source.upstream)
