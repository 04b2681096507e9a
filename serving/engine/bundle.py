"""The model bundle: the one contract between training and serving.

A bundle is a folder `models/<name>/` holding:

- `model.onnx`      the served model (int8 by default); output `logits` (float32, [batch,
                    len(labels)]). Inputs, one of two layouts (the predictor reads which):
                    packed (training's default; serving/engine/packing.py): `input_ids`,
                    `positions`, `segments` (int64, [packs, width]) and `pool` (float32,
                    [batch, packs * width]); or padded: `input_ids`, `attention_mask` (int64,
                    [batch, seq]).
- `tokenizer.json`  a `tokenizers` file; the bundle's `text_prefix` is prepended before encoding.
- `bundle.json`     metadata, validated by `BundleMeta` below.
- `MODEL_CARD.md`   intended use, limitations, metrics.

Usage: `bundle = load_bundle(Path("models/default"))`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT_VERSION = 1
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "bundle.json", "MODEL_CARD.md")


class BundleError(ValueError):
    """A bundle folder is missing something or carries invalid metadata."""


class BundleMeta(BaseModel):
    """Everything serving needs to reproduce the model's decisions, plus provenance."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format_version: int
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    labels: list[str] = Field(min_length=1)
    thresholds: dict[str, float]
    temperatures: dict[str, float]
    max_length: int = Field(gt=2, le=8192)
    text_prefix: str = ""
    model_file: str = "model.onnx"
    base_model: str = Field(min_length=1)
    training_config_digest: str = Field(min_length=1)
    data_digest: str = Field(min_length=1)
    metrics: dict = Field(default_factory=dict)
    created_at: datetime

    @model_validator(mode="after")
    def _check_per_label_maps(self) -> BundleMeta:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is not supported (this server reads {FORMAT_VERSION})"
            )
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be unique, got {self.labels}")
        for field in ("thresholds", "temperatures"):
            values = getattr(self, field)
            missing = [label for label in self.labels if label not in values]
            if missing:
                raise ValueError(f"{field} lacks a value for label(s) {missing}")
        for label, t in self.thresholds.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"thresholds[{label!r}] must be in [0, 1], got {t}")
        for label, t in self.temperatures.items():
            if not t > 0.0:
                raise ValueError(f"temperatures[{label!r}] must be > 0, got {t}")
        return self


class Bundle:
    """A validated bundle folder."""

    def __init__(self, path: Path, meta: BundleMeta) -> None:
        self.path = path
        self.meta = meta

    @property
    def model_path(self) -> Path:
        return self.path / self.meta.model_file

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.json"

    @property
    def labels(self) -> list[str]:
        return list(self.meta.labels)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, name={self.meta.name!r}, version={self.meta.version!r})"


def load_bundle(path: str | Path) -> Bundle:
    """Validate a bundle folder; raise BundleError naming everything that is missing or wrong."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(f"bundle folder {str(folder)!r} does not exist")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise BundleError(f"bundle {str(folder)!r} is incomplete: missing {', '.join(missing)}")
    try:
        raw = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{folder / 'bundle.json'} is not valid JSON: {exc}") from exc
    try:
        meta = BundleMeta.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'bundle.json'}: {err['msg']}" for err in exc.errors()
        )
        raise BundleError(f"{folder / 'bundle.json'} is invalid: {problems}") from exc
    if not (folder / meta.model_file).is_file():
        raise BundleError(f"bundle {str(folder)!r} is incomplete: missing {meta.model_file} named in bundle.json")
    return Bundle(folder, meta)


def write_bundle_meta(folder: Path, meta: dict) -> BundleMeta:
    """Validate and write bundle.json (used by training's export)."""
    validated = BundleMeta.model_validate(meta)
    (folder / "bundle.json").write_text(
        json.dumps(validated.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return validated
