"""`belong spark-score`: backfill scores over a Parquet dataset with Spark (the `spark` extra and a JRE).

Usage:
    belong spark-score --input comments.parquet --output scored.parquet \
        [--bundle models/default] [--text-column text] [--lang-column lang] [--master local[*]] \
        [--partitions N] [--ship-bundle] [--overwrite] [--conf spark.executor.memory=4g ...]

Adds `score_<tag>`, `tags`, `lang` and `truncated` to every row (nulls where there is no text).
See docs/scale-out.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from belonging_cli.common import err, fail


def spark_score(
    input_path: Annotated[str, typer.Option("--input", help="Parquet file or folder (any path Spark reads).")],
    output: Annotated[str, typer.Option(help="Parquet folder to write.")],
    bundle: Annotated[Path, typer.Option(help="Bundle folder.")] = Path("models/default"),
    text_column: Annotated[str, typer.Option(help="Column holding the comment text.")] = "text",
    lang_column: Annotated[
        str | None, typer.Option(help="Column holding a language hint (default: detect every row).")
    ] = None,
    master: Annotated[str, typer.Option(help="Spark master: local[N], spark://HOST:PORT, yarn, ...")] = "local[*]",
    partitions: Annotated[
        int | None, typer.Option(help="Repartition the input to this many tasks first.", min=1)
    ] = None,
    ship_bundle: Annotated[
        bool, typer.Option(help="Send the bundle to the executors with the job (no shared filesystem).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the output if it exists.")] = False,
    conf: Annotated[
        list[str], typer.Option("--conf", help="A Spark setting KEY=VALUE (repeatable), e.g. spark.executor.memory=4g.")
    ] = [],
) -> None:
    """Score a Parquet dataset with Spark: one model load per executor, batches through mapInPandas."""
    try:
        from pyspark.errors import PySparkException
        from pyspark.sql import SparkSession
        from pyspark.sql.utils import AnalysisException
    except ImportError as exc:
        raise fail(f"pyspark is not installed: pip install 'belonging[spark]' ({exc})", 1) from exc

    from serving.batch.spark import score_dataframe
    from serving.engine.bundle import BundleError

    settings = {}
    for item in conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--conf {item!r}: expected KEY=VALUE")
        settings[key.strip()] = value
    # Executors' Python workers run this interpreter (and so find this install of belonging).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("belong spark-score")
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        try:
            source = spark.read.parquet(input_path)
        except AnalysisException as exc:
            raise fail(f"cannot read {input_path}: {exc}") from exc
        if partitions is not None:
            source = source.repartition(partitions)
        try:
            scored = score_dataframe(
                source, bundle, text_column=text_column, lang_column=lang_column, ship_bundle=ship_bundle
            )
        except (BundleError, ValueError) as exc:
            raise fail(str(exc)) from exc
        try:
            scored.write.mode("overwrite" if overwrite else "errorifexists").parquet(output)
        except AnalysisException as exc:
            if "already exists" in str(exc):
                raise fail(f"{output} already exists: pass --overwrite to replace it") from exc
            raise
        except PySparkException as exc:
            raise fail(f"the Spark job failed: {exc}", 1) from exc
        rows = spark.read.parquet(output).count()
        err.print(f"{rows} rows scored into {output}")
    finally:
        spark.stop()
