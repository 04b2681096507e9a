"""Load, validate, deduplicate and split labelled comments.

Usage:
    report = load_rows([Path("seeds"), Path("feedback.jsonl")])
    rows = assign_splits(deduplicate(report.rows), assignment=read_assignment(Path("data/splits.jsonl")))

Accepted files: JSON Lines (.jsonl/.json), CSV (.csv) and Parquet (.parquet), or folders of them.
A row has `text` plus either the tag columns `welcoming`, `curious`, `hostile` as 0/1, or a `label`
/`labels` column naming tags (a list or a comma/semicolon/pipe-separated string; `neutral` or empty
means no tag). Optional: `id`, `lang`, `source`, `split`, `kind`.

Partial labels: a tag column set to `null` means "this row says nothing about that tag" (a source
that labels only hostility, say). Such a tag is unknown, never 0: training masks it out of the loss
and metrics skip it. At least one tag must be known.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import LABELS

log = logging.getLogger(__name__)

SUFFIXES = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".csv": "csv", ".parquet": "parquet"}
SPLITS = ("train", "dev", "test")
UNKNOWN = -1  # a tag the row's source does not label, in label vectors
NEUTRAL_NAMES = {"", "neutral", "none"}


class DataError(ValueError):
    """Bad input data; the message names file, line and what is wrong."""


@dataclass
class Row:
    text: str
    labels: dict[str, int | None]  # None: unknown (the source does not label this tag)
    id: str
    lang: str = "und"
    source: str = ""
    split: str | None = None
    kind: str | None = None
    origin: str = ""  # file:line, for messages

    def label_vector(self, labels: Sequence[str] = LABELS) -> list[int]:
        """0/1 per tag, UNKNOWN (-1) where the row says nothing about the tag."""
        values = [self.labels.get(label) for label in labels]
        return [UNKNOWN if value is None else int(value) for value in values]

    @property
    def fully_labelled(self) -> bool:
        return all(self.labels.get(label) is not None for label in LABELS)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "text": self.text, **self.labels, "lang": self.lang}
        if self.source:
            data["source"] = self.source
        if self.kind:
            data["kind"] = self.kind
        if self.split:
            data["split"] = self.split
        return data


@dataclass
class LoadReport:
    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.errors)


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"{path}: folder holds no .jsonl, .csv or .parquet files")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise DataError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl, .csv or .parquet)")
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def _iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line number, record or error message); bad bytes or JSON never stop the file."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, f"invalid UTF-8 at byte {exc.start}"
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"invalid JSON: {exc.msg} (column {exc.colno})"
                continue
            if not isinstance(record, dict):
                yield number, f"expected a JSON object, found {type(record).__name__}"
                continue
            yield number, record


def _iter_table(path: Path, kind: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """CSV and Parquet through `datasets` (lazy import: it is a training extra)."""
    import datasets

    if kind == "csv":
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            # Report the line; `datasets` would only say the file failed.
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise DataError(f"{path}:{line}: invalid UTF-8 at byte {exc.start}") from exc
    table = datasets.load_dataset(kind, data_files=str(path), split="train")
    first_data_line = 2 if kind == "csv" else 1  # CSV line 1 is the header
    for index, record in enumerate(table):
        yield index + first_data_line, dict(record)


def _as_flag(value: Any, column: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    raise DataError(f"column {column!r} must be 0 or 1, found {value!r}")


def _parse_label_names(value: Any, column: str) -> dict[str, int | None]:
    if value is None:
        names: list[str] = []
    elif isinstance(value, str):
        names = [n.strip() for n in re.split(r"[,;|]", value)]
    elif isinstance(value, (list, tuple)):
        names = [str(n).strip() for n in value]
    else:
        raise DataError(f"column {column!r} must be a tag name or list of tag names, found {value!r}")
    labels: dict[str, int | None] = dict.fromkeys(LABELS, 0)
    for name in names:
        key = name.lower()
        if key in NEUTRAL_NAMES:
            continue
        if key not in labels:
            raise DataError(f"unknown tag {name!r} in column {column!r} (known: {', '.join(LABELS)}, neutral)")
        labels[key] = 1
    return labels


def parse_record(record: dict[str, Any], origin: str, fallback_id: str) -> Row:
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DataError("missing text" if text is None else f"text must be a non-empty string, found {text!r}")
    tag_columns = [label for label in LABELS if label in record]
    if tag_columns:
        missing = [label for label in LABELS if label not in tag_columns]
        if missing:
            raise DataError(
                f"missing tag column(s) {missing}: give all of {list(LABELS)} (null where unknown) or a 'labels' column"
            )
        labels: dict[str, int | None] = {
            label: None if record[label] is None else _as_flag(record[label], label) for label in LABELS
        }
        if all(value is None for value in labels.values()):
            raise DataError(f"every tag is null: at least one of {list(LABELS)} must be 0 or 1")
    elif "labels" in record or "label" in record:
        column = "labels" if "labels" in record else "label"
        labels = _parse_label_names(record[column], column)
    else:
        raise DataError(f"no labels: expected columns {list(LABELS)} or 'labels', found {sorted(record)}")
    split = record.get("split")
    if split is not None and split not in SPLITS:
        raise DataError(f"split must be one of {list(SPLITS)}, found {split!r}")
    row_id = record.get("id")
    return Row(
        text=text,
        labels=labels,
        id=str(row_id) if row_id not in (None, "") else fallback_id,
        lang=str(record.get("lang") or "und"),
        source=str(record.get("source") or ""),
        split=split,
        kind=record.get("kind") or record.get("case") or None,  # challenge sets name it `case`
        origin=origin,
    )


def load_rows(paths: Iterable[Path], *, strict: bool = False) -> LoadReport:
    """Read every file; bad rows are collected as 'file:line: problem' (or raised with strict)."""
    report = LoadReport(files=expand_paths(paths))
    for path in report.files:
        kind = SUFFIXES[path.suffix.lower()]
        records = _iter_json_lines(path) if kind == "json" else _iter_table(path, kind)
        for number, record in records:
            origin = f"{path}:{number}"
            try:
                if isinstance(record, str):
                    raise DataError(record)
                report.rows.append(parse_record(record, origin, fallback_id=f"{path.stem}-{number}"))
            except DataError as exc:
                message = f"{origin}: {exc}"
                if strict:
                    raise DataError(message) from exc
                report.errors.append(message)
    for message in report.errors[:20]:
        log.warning("skipped %s", message)
    if report.errors:
        log.warning("skipped %d bad row(s) in total", len(report.errors))
    return report


def normalize_text(text: str) -> str:
    """The key duplicates share: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def deduplicate(rows: Iterable[Row]) -> tuple[list[Row], int, int]:
    """Keep the first row per normalized text. Returns (rows, duplicates dropped, label conflicts)."""
    seen: dict[str, Row] = {}
    dropped = conflicts = 0
    for row in rows:
        key = normalize_text(row.text)
        if key in seen:
            dropped += 1
            if seen[key].labels != row.labels:
                conflicts += 1
                log.warning("duplicate text with other labels: %s keeps %s", row.origin, seen[key].origin)
            continue
        seen[key] = row
    return list(seen.values()), dropped, conflicts


def stable_hash(text: str, seed: int) -> str:
    """A seeded order that does not depend on file order: for splits and stable samples."""
    return hashlib.sha256(f"{seed}:{normalize_text(text)}".encode()).hexdigest()


def stratum(row: Row) -> str:
    """Stratify by language and tag combination, so every split sees every language and tag."""
    return row.lang + ":" + "".join("x" if v == UNKNOWN else str(v) for v in row.label_vector())


def stratified_split(rows: Sequence[Row], dev_fraction: float, test_fraction: float, seed: int = 13) -> dict[str, str]:
    """Deterministic: order within each stratum by a hash of the text, then cut by fractions.

    Cutting at cumulative boundaries (not per-row coin flips) keeps every stratum's split sizes
    within one row of the target, even for small strata.
    """
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(stratum(row), []).append(row)
    assignment: dict[str, str] = {}
    carry_dev = carry_test = 0.0
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda r: stable_hash(r.text, seed))
        carry_test += len(group) * test_fraction
        carry_dev += len(group) * dev_fraction
        n_test, n_dev = int(carry_test), int(carry_dev)
        carry_test -= n_test
        carry_dev -= n_dev
        for index, row in enumerate(group):
            assignment[row.id] = "test" if index < n_test else "dev" if index < n_test + n_dev else "train"
    return assignment


def read_assignment(path: Path) -> dict[str, str]:
    """data/splits.jsonl: one {"id", "split"} per line."""
    if not path.is_file():
        return {}
    assignment = {}
    for number, record in _iter_json_lines(path):
        if isinstance(record, str) or record.get("split") not in SPLITS or "id" not in record:
            raise DataError(f"{path}:{number}: expected {{'id': ..., 'split': train|dev|test}}")
        assignment[str(record["id"])] = record["split"]
    return assignment


def write_assignment(path: Path, assignment: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row_id in sorted(assignment):
            handle.write(json.dumps({"id": row_id, "split": assignment[row_id]}) + "\n")


def assign_splits(
    rows: list[Row],
    *,
    assignment: dict[str, str] | None = None,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 13,
) -> list[Row]:
    """A row's own `split` wins, then the committed assignment, then a stratified split of the rest."""
    assignment = assignment or {}
    for row in rows:
        if row.split is None and row.id in assignment:
            row.split = assignment[row.id]
    rest = [row for row in rows if row.split is None]
    fresh = stratified_split(rest, dev_fraction, test_fraction, seed)
    for row in rest:
        row.split = fresh[row.id]
    return rows


def by_split(rows: Iterable[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {split: [] for split in SPLITS}
    for row in rows:
        out[row.split or "train"].append(row)
    return out


def data_digest(rows: Iterable[Row]) -> str:
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: (r.split or "", r.id)):
        digest.update(json.dumps([row.split, row.id, row.text, row.label_vector()], ensure_ascii=False).encode())
    return "sha256:" + digest.hexdigest()


def count_table(rows: Iterable[Row]) -> dict[tuple[str, str], Counter]:
    """(lang, split) -> Counter of rows, each tag and neutral."""
    table: dict[tuple[str, str], Counter] = {}
    for row in rows:
        counter = table.setdefault((row.lang, row.split or "-"), Counter())
        counter["rows"] += 1
        vector = row.label_vector()
        for label, value in zip(LABELS, vector, strict=True):
            counter[label] += int(value == 1)
        counter["neutral"] += int(all(v == 0 for v in vector))
        counter["partial"] += int(UNKNOWN in vector)
    return table
