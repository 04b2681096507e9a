"""A data recipe: every source a model trains on, with licence, label mapping and sampling, as a file.

Usage:
    recipe = Recipe.load(Path("training/recipes/default.toml"), corpora=Path("../shared/data"))
    recipe.check()                      # fails in seconds naming a missing required input
    for source in recipe.available(): ...

File format (TOML):

    corpora = "../shared/data"          # what {corpora} stands for; --corpora or BELONG_CORPORA win
    [train]                             # TrainConfig overrides (optional)
    epochs = 2
    [evaluation]
    calibrate_on = ["{corpora}/rednote_dev.jsonl"]   # thresholds; skipped with a note when absent
    calibrate_with_dev = true           # also the dev rows of the `select` sources (one set each)
    eval_data = ["{corpora}/rednote_dev.jsonl"]      # extra sets for the model card
    [[sources]]
    name = "davidson"                   # unique; rows carry it (metrics per source)
    path = "{corpora}/davidson_tweets.jsonl"
    format = "davidson"                 # labelled | annotations | a mapper in training/sources.py
    licence = "MIT"
    tags = ["hostile"]                  # the tags this source decides (documentation + check)
    per_epoch = 3000                    # rows sampled from its train split each epoch (0 = all;
                                        # more than it has: every row, then random repeats)
    optional = true                     # absent -> listed once and skipped (default: required)
    split = "test"                      # force every row into one split (e.g. an upstream dev set,
                                        # or a labelled round kept whole for evaluation)
    upstream = {train = "auto", dev = "test"}  # rename the corpus's own splits; "auto" = hash split
    holdout = false                     # no test rows from the hash split (the corpus has its own test)
    dev_cap = 500                       # at most this many dev rows (keeps each epoch's dev pass short)
    test_cap = 1000
    select = true                       # its dev rows choose the checkpoint (real comments)

Relative paths are relative to the recipe's repository root (the folder holding `training/`),
so `belong train --recipe ...` works from any directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from training.config import LABELS
from training.data import SPLITS, DataError
from training.sources import FORMATS

DEFAULT_CORPORA = "../shared/data"
SOURCE_KEYS = {
    "name",
    "path",
    "format",
    "licence",
    "tags",
    "per_epoch",
    "optional",
    "split",
    "dev_cap",
    "test_cap",
    "select",
    "texts",
    "note",
    "upstream",
    "holdout",
}


@dataclass
class Source:
    name: str
    path: Path
    format: str = "labelled"
    licence: str = ""
    tags: tuple[str, ...] = LABELS
    per_epoch: int = 0
    optional: bool = False
    split: str | None = None
    dev_cap: int = 0
    test_cap: int = 0
    select: bool = False
    texts: Path | None = None
    note: str = ""
    upstream: dict[str, str] = field(default_factory=dict)
    holdout: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "format": self.format,
            "licence": self.licence,
            "tags": list(self.tags),
            "per_epoch": self.per_epoch,
            "select": self.select,
        }


@dataclass
class Recipe:
    path: Path | None
    corpora: Path
    sources: list[Source]
    train: dict[str, Any] = field(default_factory=dict)
    calibrate_on: list[Path] = field(default_factory=list)
    eval_data: list[Path] = field(default_factory=list)
    calibrate_with_dev: bool = False
    checked: bool = False  # notes are given once, however many stages check

    @classmethod
    def load(cls, path: Path, corpora: Path | None = None) -> Recipe:
        try:
            with open(path, "rb") as handle:
                spec = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise DataError(f"{path}: recipe file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{path}: not valid TOML: {exc}") from exc
        root = _repo_root(path)
        unknown = sorted(set(spec) - {"corpora", "train", "evaluation", "sources"})
        if unknown:
            raise DataError(f"{path}: unknown top-level keys {unknown}")
        corpora = corpora or Path(
            os.environ.get("BELONG_CORPORA") or _resolve(spec.get("corpora", DEFAULT_CORPORA), root, None)
        )
        sources = [_source(entry, index, path, root, corpora) for index, entry in enumerate(spec.get("sources", []))]
        names = [s.name for s in sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise DataError(f"{path}: source names must be unique, repeated: {duplicated}")
        evaluation = spec.get("evaluation", {})
        return cls(
            path=path,
            corpora=corpora,
            sources=sources,
            train=dict(spec.get("train", {})),
            calibrate_on=[_resolve(p, root, corpora) for p in evaluation.get("calibrate_on", [])],
            eval_data=[_resolve(p, root, corpora) for p in evaluation.get("eval_data", [])],
            calibrate_with_dev=bool(evaluation.get("calibrate_with_dev", False)),
        )

    @classmethod
    def from_files(cls, data: list[Path]) -> Recipe:
        """`--data` files: each a fully labelled source named after the file or folder."""
        sources = [Source(name=p.stem or str(p), path=p, format="labelled", per_epoch=0) for p in data]
        return cls(path=None, corpora=Path(DEFAULT_CORPORA), sources=sources)

    def missing(self) -> tuple[list[Source], list[Source]]:
        """(required sources that are absent, optional sources that are absent)."""
        absent = [s for s in self.sources if not s.path.exists() or (s.texts is not None and not s.texts.exists())]
        return [s for s in absent if not s.optional], [s for s in absent if s.optional]

    def available(self) -> list[Source]:
        required, optional = self.missing()
        gone = {s.name for s in required + optional}
        return [s for s in self.sources if s.name not in gone]

    def check(self) -> list[str]:
        """Raise naming every missing required input; return notes on optional inputs skipped (once)."""
        required, optional = self.missing()
        if required:
            raise DataError(
                "missing required training data: " + ", ".join(f"{s.name} ({_absent_path(s)})" for s in required)
            )
        notes = []
        if optional:
            notes.append(
                "not found: "
                + ", ".join(f"{s.name} ({_absent_path(s)})" for s in optional)
                + f"; training without them (corpora folder: {self.corpora})"
            )
        absent_eval = [p for p in self.calibrate_on + self.eval_data if not p.exists()]
        if absent_eval:
            notes.append(
                "not found: "
                + ", ".join(sorted({str(p) for p in absent_eval}))
                + "; calibrating on the dev split and evaluating without them"
            )
        self.calibrate_on = [p for p in self.calibrate_on if p.exists()]
        self.eval_data = [p for p in self.eval_data if p.exists()]
        notes, self.checked = ([] if self.checked else notes), True
        return notes


def _absent_path(source: Source) -> Path:
    """What is missing for a source: its file, or the corpus folder its text comes from."""
    return source.texts if source.path.exists() and source.texts is not None else source.path


def _repo_root(recipe_path: Path) -> Path:
    """The folder holding `training/recipes/...` (or the recipe's own folder for recipes elsewhere)."""
    resolved = recipe_path.resolve()
    for parent in resolved.parents:
        if (parent / "training").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    return resolved.parent


def _resolve(value: str, root: Path, corpora: Path | None) -> Path:
    if "{corpora}" in value:
        if corpora is None:
            raise DataError(f"{value}: {{corpora}} cannot be used inside `corpora` itself")
        value = value.replace("{corpora}", str(corpora))
    path = Path(value)
    return path if path.is_absolute() else (root / path)


def _source(entry: dict[str, Any], index: int, recipe: Path, root: Path, corpora: Path) -> Source:
    where = f"{recipe}: sources[{index}]"
    unknown = sorted(set(entry) - SOURCE_KEYS)
    if unknown:
        raise DataError(f"{where}: unknown keys {unknown}; known: {sorted(SOURCE_KEYS)}")
    for key in ("name", "path"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise DataError(f"{where}: `{key}` is required")
    where = f"{recipe}: source {entry['name']!r}"
    fmt = entry.get("format", "labelled")
    if fmt not in FORMATS:
        raise DataError(f"{where}: unknown format {fmt!r}; known: {list(FORMATS)}")
    tags = tuple(entry.get("tags", LABELS))
    if not tags or set(tags) - set(LABELS):
        raise DataError(f"{where}: tags must be a non-empty subset of {list(LABELS)}, got {list(tags)}")
    split = entry.get("split")
    if split is not None and split not in SPLITS:
        raise DataError(f"{where}: split must be one of {list(SPLITS)}, got {split!r}")
    numbers = {key: entry.get(key, 0) for key in ("per_epoch", "dev_cap", "test_cap")}
    for key, value in numbers.items():
        if not isinstance(value, int) or value < 0:
            raise DataError(f"{where}: {key} must be a whole number >= 0, got {value!r}")
    upstream = entry.get("upstream", {})
    if not isinstance(upstream, dict) or set(upstream.values()) - {*SPLITS, "auto"}:
        raise DataError(f"{where}: upstream maps split names to train, dev, test or auto, got {upstream!r}")
    texts = entry.get("texts")
    return Source(
        name=entry["name"],
        path=_resolve(entry["path"], root, corpora),
        format=fmt,
        upstream=dict(upstream),
        holdout=bool(entry.get("holdout", True)),
        licence=str(entry.get("licence", "")),
        tags=tags,
        optional=bool(entry.get("optional", False)),
        split=split,
        select=bool(entry.get("select", False)),
        note=str(entry.get("note", "")),
        texts=_resolve(texts, root, corpora) if texts else None,
        **numbers,
    )
