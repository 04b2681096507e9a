"""Spark backfill for real: pyspark in local mode (a JVM from Debian's headless JRE) scoring a Parquet
file through `belong spark-score`, matching `belong score` on the same texts. One small job."""

from __future__ import annotations

import json
import math
import os
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from belonging_cli.main import app

runner = CliRunner()


def require_spark() -> None:
    reason = None
    try:
        import pyspark  # noqa: F401
    except ImportError:
        reason = "pyspark is not installed (pip install -e '.[spark]')"
    if reason is None and shutil.which("java") is None:
        reason = "no Java runtime for Spark (bash .ci/java.sh)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Spark test: {reason}")
        pytest.skip(reason)


TEXTS = [
    "Welcome to the group, so glad you found us! Where are you from?",
    "go back to where you came from, nobody wants you here",
    "滚回去，这里不欢迎你",
    "Bienvenida amiga, ¿de qué país eres?",
    "ようこそ！どこから来たの？",
    "thank you all 🤗 " * 30,
]


def test_spark_score_matches_belong_score(tiny_bundle, tmp_path):
    require_spark()
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(len(TEXTS) + 1)], "text": [*TEXTS, None]})
    frame["n"] = range(len(frame))
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"r{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))

    result = runner.invoke(
        app, ["score", "--bundle", str(tiny_bundle), "--input", str(jsonl), "--output", str(tmp_path / "out.jsonl")]
    )
    assert result.exit_code == 0, result.output
    expected = {line["id"]: line for line in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}

    out = tmp_path / "scored.parquet"
    args = ["spark-score", "--input", str(source), "--output", str(out), "--bundle", str(tiny_bundle)]
    result = runner.invoke(app, [*args, "--master", "local[2]", "--conf", "spark.ui.enabled=false"])
    assert result.exit_code == 0, result.output
    assert "7 rows scored into" in result.output
    scored = pd.read_parquet(out).sort_values("n").reset_index(drop=True)
    assert list(scored.columns) == [
        "id", "text", "n", "score_welcoming", "score_curious", "score_hostile", "tags", "lang", "truncated"
    ]  # fmt: skip
    # One small file is one partition: Spark batches these texts exactly as `belong score` does.
    for row in scored.iloc[: len(TEXTS)].itertuples():
        want = expected[row.id]
        assert {t: getattr(row, f"score_{t}") for t in want["scores"]} == want["scores"]
        assert list(row.tags) == want["tags"] and row.lang == want["lang"]
    assert scored.loc[5, "truncated"] and not scored.loc[2, "truncated"]
    last = scored.iloc[-1]  # no text: nulls, and the row is kept
    assert last["id"] == "r6" and math.isnan(last["score_hostile"]) and last["tags"] is None and pd.isna(last["lang"])

    # A missing column is named before any job runs (the existing output is left alone).
    wrong = runner.invoke(app, [*args, "--master", "local[1]", "--text-column", "body"])
    assert wrong.exit_code == 2 and "no column 'body' in the input; its columns are ['id', 'text', 'n']" in wrong.output
