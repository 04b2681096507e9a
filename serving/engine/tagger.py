"""The tagger: a bundle's model plus language detection, scoring texts in cost-planned batches.

Usage:
    tagger = Tagger.load("models/default")
    tagger.score(["Welcome to RedNote!", "滚回去"])              # -> [Scored(scores, tags, lang, truncated)]
    tagger.score_frame(df, text_column="body")                # pandas: a copy with score columns added

This is the public Python API (`from belonging import Tagger`) and the code behind `belong score`,
`belong consume` and `belong spark-score`; the server's runtime holds one too and hands its
predictor and language detector to the micro-batcher. Tags come from `Predictor.tags_for` (the
bundle's thresholds) everywhere, and results are the batcher's own `Scored`, so a text gets the
same answer whichever door it comes in by.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.engine.batching import PredictorLike, Scored, plan_batches
from serving.engine.lang import DEFAULT_LANGUAGES, language_detector, parse_languages

if TYPE_CHECKING:
    import pandas as pd

# The server's defaults (serving/settings.py): the same batch cost model and language set.
DEFAULT_BATCH_SIZE = 32
DEFAULT_BATCH_OVERHEAD = 32.0
DEFAULT_MIN_LANGUAGE_CONFIDENCE = 0.3
# Texts tokenized and planned together: bounds memory on long lists while keeping batches full.
CHUNK = 1024

SCORE_PREFIX = "score_"


class Tagger:
    """Thread-safe: several threads may call `score` at once (onnxruntime sessions are)."""

    def __init__(
        self,
        predictor: PredictorLike,
        detect: Callable[[str], str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_overhead: float = DEFAULT_BATCH_OVERHEAD,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.predictor = predictor
        self.detect = detect
        self.batch_size = batch_size
        self.batch_overhead = batch_overhead

    @classmethod
    def load(
        cls,
        bundle_path: str | Path,
        *,
        threads: int | None = None,
        languages: str | Sequence[str] = DEFAULT_LANGUAGES,
        min_language_confidence: float = DEFAULT_MIN_LANGUAGE_CONFIDENCE,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Tagger:
        """Load a bundle folder (BundleError names what is missing) and the language detector.

        `threads`: onnxruntime intra-op threads (default: every core; 1 per worker in Spark).
        `languages`: ISO 639-1 codes the detector picks among ("und" below `min_language_confidence`).
        """
        from serving.engine.predictor import Predictor  # onnxruntime: loaded only when a model is

        codes = parse_languages(languages) if isinstance(languages, str) else tuple(sorted(set(languages)))
        detect = language_detector(codes, min_language_confidence)
        return cls(Predictor.from_path(bundle_path, threads=threads), detect, batch_size=batch_size)

    # --- what the bundle says ---

    @property
    def labels(self) -> list[str]:
        return list(self.predictor.labels)

    @property
    def thresholds(self) -> dict[str, float]:
        return {label: float(self.predictor.bundle.meta.thresholds[label]) for label in self.labels}

    @property
    def name(self) -> str:
        return self.predictor.name

    @property
    def version(self) -> str:
        return self.predictor.version

    def __repr__(self) -> str:
        return f"Tagger(name={self.name!r}, version={self.version!r}, labels={self.labels})"

    # --- scoring ---

    def score(self, texts: Iterable[str], langs: Sequence[str | None] | None = None) -> list[Scored]:
        """Score texts; results in input order. `langs` are optional hints (None: detect).

        A text that is not a string raises ValueError naming its position; a blank one is scored,
        as `/v1/score` scores it.
        """
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}] is {type(text).__name__}, expected a string")
        if langs is not None and len(langs) != len(texts):
            raise ValueError(f"got {len(langs)} language hints for {len(texts)} texts")
        hints: list[str | None] = list(langs) if langs is not None else [None] * len(texts)
        results: list[Scored] = []
        for start in range(0, len(texts), CHUNK):
            results.extend(self._score_chunk(texts[start : start + CHUNK], hints[start : start + CHUNK]))
        return results

    def _score_chunk(self, texts: list[str], hints: list[str | None]) -> list[Scored]:
        encoded = self.predictor.encode(texts)
        lengths = [len(e.ids) for e in encoded]
        out: list[Scored | None] = [None] * len(texts)
        for chunk in plan_batches(lengths, self.batch_size, self.batch_overhead):
            predictions = self.predictor.predict_encoded([encoded[k] for k in chunk], batch_size=len(chunk))
            for k, prediction in zip(chunk, predictions, strict=True):
                out[k] = Scored(
                    scores=prediction.scores,
                    tags=list(prediction.tags),
                    truncated=prediction.truncated,
                    lang=hints[k] or self.detect(texts[k]),
                )
        return [r for r in out if r is not None]

    def score_columns(self) -> list[str]:
        """The columns `score_frame` adds, in order."""
        return [SCORE_PREFIX + label for label in self.labels] + ["tags", "lang", "truncated"]

    def score_frame(
        self, df: pd.DataFrame, text_column: str = "text", *, lang_column: str | None = None
    ) -> pd.DataFrame:
        """A copy of `df` with `score_<label>` (probabilities), `tags` (list), `lang` and `truncated`.

        Rows whose text is missing, not a string or blank get nulls in the added columns (there is
        nothing to score) and the other rows are scored; the index and the order are kept.
        """
        if text_column not in df.columns:
            raise ValueError(f"no column {text_column!r} in the frame; its columns are {list(df.columns)}")
        if lang_column is not None and lang_column not in df.columns:
            raise ValueError(f"no column {lang_column!r} in the frame; its columns are {list(df.columns)}")
        clash = [c for c in self.score_columns() if c in df.columns]
        if clash:
            raise ValueError(f"the frame already has column(s) {clash} that scoring adds: rename or drop them first")
        texts = df[text_column].tolist()
        hints = df[lang_column].tolist() if lang_column is not None else [None] * len(texts)
        usable = [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]
        scored = self.score([texts[i] for i in usable], [_hint(hints[i]) for i in usable])
        columns: dict[str, list[Any]] = {name: [None] * len(texts) for name in self.score_columns()}
        for label in self.labels:
            columns[SCORE_PREFIX + label] = [math.nan] * len(texts)
        for i, result in zip(usable, scored, strict=True):
            for label in self.labels:
                columns[SCORE_PREFIX + label][i] = result.scores[label]
            columns["tags"][i] = result.tags
            columns["lang"][i] = result.lang
            columns["truncated"][i] = result.truncated
        return df.assign(**columns)


def _hint(value: Any) -> str | None:
    """A language hint from a frame cell: strings only (NaN, None and blanks mean detect)."""
    return (value.strip() or None) if isinstance(value, str) else None
