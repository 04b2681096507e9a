"""Score texts with a bundle: tokenizers + onnxruntime, calibrated, thresholded.

Usage:
    predictor = Predictor.from_path("models/default")
    predictor.predict(["Welcome to RedNote!", "go back to TikTok"])

This is the served path: training's evaluation runs exactly this code on the exported model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from serving.engine.bundle import Bundle, load_bundle
from serving.engine.packing import PACKED_INPUTS, packed_feeds, plan_packs


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    truncated: bool


@dataclass(frozen=True)
class Prediction:
    scores: dict[str, float]
    tags: list[str]
    truncated: bool


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """Load tokenizer.json truncating to the model window.

    `encode_special_tokens` makes a literal "<s>" typed in a comment plain text, not a control
    token, whatever the tokenizer file registers; the template still adds the real ones by id.
    """
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    tokenizer.encode_special_tokens = True
    return tokenizer


def pad_id_of(tokenizer: Tokenizer) -> int:
    for token in ("<pad>", "[PAD]"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token_id
    return 0


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Predictor:
    """Thread-safe for concurrent `predict` calls (onnxruntime sessions are)."""

    def __init__(self, bundle: Bundle, *, model_path: Path | None = None, threads: int | None = None):
        self.bundle = bundle
        meta = bundle.meta
        self.labels = list(meta.labels)
        self.max_length = meta.max_length
        self.text_prefix = meta.text_prefix
        self.tokenizer = load_tokenizer(bundle.tokenizer_path, meta.max_length)
        self.pad_id = pad_id_of(self.tokenizer)
        self.temperatures = np.array([meta.temperatures[label] for label in self.labels], dtype=np.float32)
        self.thresholds = np.array([meta.thresholds[label] for label in self.labels], dtype=np.float32)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_path or bundle.model_path), options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self.session.get_inputs()}
        # Bundles exported with `packed = true` take packed batches (serving/engine/packing.py);
        # older ones and `packed = false` take padded ones.
        self.packed = set(PACKED_INPUTS) <= self._input_names

    @classmethod
    def from_path(cls, path: str | Path, **kwargs) -> Predictor:
        return cls(load_bundle(path), **kwargs)

    @property
    def name(self) -> str:
        return self.bundle.meta.name

    @property
    def version(self) -> str:
        return self.bundle.meta.version

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        encodings = self.tokenizer.encode_batch([self.text_prefix + t for t in texts])
        return [Encoded(ids=list(e.ids), truncated=bool(e.overflowing)) for e in encodings]

    def logits(self, encoded: Sequence[Encoded], packs: Sequence[Sequence[int]] | None = None) -> np.ndarray:
        """Raw logits for one batch: packed where the model takes it (as `plan_packs` plans, or as
        the given `packs` of indices), else padded to its longest row."""
        rows = [e.ids for e in encoded]
        if self.packed:
            feeds = packed_feeds(rows, plan_packs([len(r) for r in rows]) if packs is None else packs, self.pad_id)
        else:
            width = max(len(r) for r in rows)
            input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(rows), width), dtype=np.int64)
            for index, r in enumerate(rows):
                input_ids[index, : len(r)] = r
                attention_mask[index, : len(r)] = 1
            feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(input_ids)
        (out,) = self.session.run(["logits"], feeds)
        return np.asarray(out, dtype=np.float32)

    def probabilities_encoded(self, encoded: Sequence[Encoded], batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities, [n, labels]; rows run in length-sorted batches to waste no padding."""
        probs = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        if not encoded:
            return probs
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            logits = self.logits([encoded[i] for i in chunk])
            probs[chunk] = sigmoid(logits / self.temperatures)
        return probs

    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self.probabilities_encoded(self.encode(texts), batch_size)

    def tags_for(self, probs: np.ndarray) -> list[str]:
        return [label for label, p, t in zip(self.labels, probs, self.thresholds, strict=True) if p >= t]

    def predict_encoded(self, encoded: Sequence[Encoded], batch_size: int = 32) -> list[Prediction]:
        probs = self.probabilities_encoded(encoded, batch_size)
        return [
            Prediction(
                scores={label: round(float(p), 6) for label, p in zip(self.labels, row, strict=True)},
                tags=self.tags_for(row),
                truncated=e.truncated,
            )
            for row, e in zip(probs, encoded, strict=True)
        ]

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        return self.predict_encoded(self.encode(texts), batch_size)
