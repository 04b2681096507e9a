"""Spark backfills: score a text column of a Spark DataFrame with `mapInPandas`, one Tagger per executor.

Usage:
    from serving.batch.spark import score_dataframe
    scored = score_dataframe(spark.read.parquet("comments/"), "models/default", text_column="body")
    scored.write.parquet("scored/")

Each Python worker loads the bundle once (the first batch it sees) and keeps it for every later
task (Spark reuses Python workers by default), then scores Arrow batches through
`Tagger.score_frame`: the columns added are `score_<label>`, `tags`, `lang`, `truncated`, and rows
without text get nulls. Workers run onnxruntime on one thread each, since Spark already runs one
task per core. The bundle folder must be readable at the same path on every executor (a shared
filesystem), or shipped with the job (`ship_bundle=True`, through `SparkContext.addFile`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from serving.engine.bundle import load_bundle
from serving.engine.tagger import SCORE_PREFIX, Tagger

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

# One tagger per (bundle, threads) in each Python worker process.
_TAGGERS: dict[tuple[str, int], Tagger] = {}


def executor_tagger(bundle: str, threads: int) -> Tagger:
    """The worker's tagger, loaded on first use."""
    key = (bundle, threads)
    if key not in _TAGGERS:
        _TAGGERS[key] = Tagger.load(bundle, threads=threads)
    return _TAGGERS[key]


def output_schema(schema: StructType, labels: list[str]) -> StructType:
    from pyspark.sql.types import ArrayType, BooleanType, DoubleType, StringType, StructField, StructType

    added = [StructField(SCORE_PREFIX + label, DoubleType(), True) for label in labels]
    added += [
        StructField("tags", ArrayType(StringType(), False), True),
        StructField("lang", StringType(), True),
        StructField("truncated", BooleanType(), True),
    ]
    return StructType([*schema.fields, *added])


def score_dataframe(
    df: DataFrame,
    bundle: str | Path,
    *,
    text_column: str = "text",
    lang_column: str | None = None,
    threads: int = 1,
    ship_bundle: bool = False,
) -> DataFrame:
    """`df` with the score columns added (lazily: nothing runs until an action or a write)."""
    folder = Path(bundle).resolve()
    labels = list(load_bundle(folder).meta.labels)  # validated on the driver: errors name the file
    columns = df.columns
    for name in (text_column, lang_column):
        if name is not None and name not in columns:
            raise ValueError(f"no column {name!r} in the input; its columns are {columns}")
    added = [SCORE_PREFIX + label for label in labels] + ["tags", "lang", "truncated"]
    clash = [c for c in added if c in columns]
    if clash:
        raise ValueError(f"the input already has column(s) {clash} that scoring adds: rename or drop them first")
    if ship_bundle:
        df.sparkSession.sparkContext.addFile(str(folder), recursive=True)
    partition_scorer = _scorer(str(folder), folder.name if ship_bundle else None, threads, text_column, lang_column)
    return df.mapInPandas(partition_scorer, output_schema(df.schema, labels))


def _scorer(
    path: str, shipped_name: str | None, threads: int, text_column: str, lang_column: str | None
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function Spark pickles to the executors: small, referring to this module by name."""

    def score_partition(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        bundle = path
        if shipped_name is not None:
            from pyspark import SparkFiles

            bundle = SparkFiles.get(shipped_name)
        tagger = executor_tagger(bundle, threads)
        for frame in frames:
            yield tagger.score_frame(frame, text_column, lang_column=lang_column)

    return score_partition
