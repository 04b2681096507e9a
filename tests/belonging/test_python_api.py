"""The public Python API (`from belonging import Tagger`) on the real tiny bundle, and the documented
example run as written (bundle path swapped for the tiny one)."""

from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import sys

import pandas as pd
import pytest

from belonging import BundleError, Scored, Tagger
from serving.engine.predictor import Predictor
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def tagger(tiny_bundle) -> Tagger:
    return Tagger.load(tiny_bundle, threads=1)


def python_blocks(path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("doc", ["README.md", "docs/python-api.md"])
def test_the_documented_example_runs(doc, tiny_bundle):
    (example,) = [b for b in python_blocks(ROOT / doc) if "from belonging import Tagger" in b]
    assert '"models/default"' in example
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example.replace('"models/default"', repr(str(tiny_bundle))), doc, "exec"), {})
    lines = out.getvalue().splitlines()
    # Two results (tags, language, scores), then the frame's header and its three rows.
    assert lines[0].startswith("[") and " en {'welcoming': " in lines[0]
    assert " zh {'welcoming': " in lines[1]
    assert lines[2].split() == ["id", "tags", "lang", "score_hostile"]
    assert [line.split()[1] for line in lines[3:6]] == ["c1", "c2", "c3"]
    assert lines[5].split()[2:] == ["None", "NaN", "NaN"]  # no text: nothing scored, nothing lost


def test_score_follows_the_bundle_thresholds_and_the_predictor(tagger, tiny_bundle):
    texts = ["Welcome to the group! Where are you from?", "滚回去", "go back " * 60, "Bienvenida, amiga"]
    results = tagger.score(texts)
    assert all(isinstance(r, Scored) for r in results) and len(results) == 4
    for result in results:
        assert result.tags == [t for t in tagger.labels if result.scores[t] >= tagger.thresholds[t]]
    assert [r.truncated for r in results] == [False, False, True, False]
    assert results[1].lang == "zh"
    # Same model, same thresholds as the engine's Predictor (int8 scales per batch: close, not equal).
    expected = Predictor.from_path(tiny_bundle, threads=1).predict(texts)
    for result, want in zip(results, expected, strict=True):
        assert result.scores == {k: pytest.approx(v, abs=5e-3) for k, v in want.scores.items()}


def test_score_keeps_input_order_over_chunks_and_honours_hints(tagger, monkeypatch):
    import serving.engine.tagger as tagger_module

    monkeypatch.setattr(tagger_module, "CHUNK", 3)  # several chunks of length-sorted batches
    texts = [f"{'x' * (i % 5 + 1)} where are you from {i}?" for i in range(8)]
    one_by_one = [tagger.score([t], ["en"])[0] for t in texts]
    together = tagger.score(texts, ["en"] * 7 + ["pt"])
    assert [r.lang for r in together] == ["en"] * 7 + ["pt"]
    for a, b in zip(together, one_by_one, strict=True):
        assert a.scores == {k: pytest.approx(v, abs=5e-3) for k, v in b.scores.items()}


@pytest.mark.parametrize(
    ("texts", "langs", "message"),
    [
        (["fine", 3], None, "texts[1] is int, expected a string"),
        ([None], None, "texts[0] is NoneType, expected a string"),
        (["a", "b"], ["en"], "got 1 language hints for 2 texts"),
    ],
)
def test_score_names_bad_input(tagger, texts, langs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tagger.score(texts, langs)


def test_score_of_nothing_is_nothing(tagger):
    assert tagger.score([]) == []


def test_score_frame_adds_columns_keeps_index_and_rows_without_text(tagger):
    frame = pd.DataFrame(
        {"body": ["Welcome! where are you from?", None, "   ", "滚回去", 7], "hint": ["en", None, None, None, None]},
        index=[10, 11, 12, 13, 14],
    )
    scored = tagger.score_frame(frame, text_column="body", lang_column="hint")
    assert list(scored.index) == [10, 11, 12, 13, 14] and list(frame.columns) == ["body", "hint"]
    assert list(scored.columns) == ["body", "hint", *tagger.score_columns()]
    assert tagger.score_columns() == ["score_welcoming", "score_curious", "score_hostile", "tags", "lang", "truncated"]
    direct = tagger.score(["Welcome! where are you from?", "滚回去"], ["en", None])
    for row, result in zip([10, 13], direct, strict=True):
        assert scored.loc[row, "tags"] == result.tags and scored.loc[row, "lang"] == result.lang
        assert scored.loc[row, "score_hostile"] == pytest.approx(result.scores["hostile"], abs=5e-3)
    for row in (11, 12, 14):
        assert math.isnan(scored.loc[row, "score_hostile"]) and scored.loc[row, "tags"] is None
    assert scored.loc[10, "lang"] == "en" and scored.loc[13, "lang"] == "zh"


def test_score_frame_names_missing_and_clashing_columns(tagger):
    frame = pd.DataFrame({"text": ["hi"], "tags": [["x"]]})
    with pytest.raises(ValueError, match=re.escape("no column 'body' in the frame; its columns are ['text', 'tags']")):
        tagger.score_frame(frame, text_column="body")
    with pytest.raises(ValueError, match=re.escape("already has column(s) ['tags'] that scoring adds")):
        tagger.score_frame(frame)


def test_load_names_what_is_missing(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        Tagger.load(tmp_path / "nothing")


def test_load_refuses_unknown_language_codes(tiny_bundle):
    with pytest.raises(ValueError, match=r"does not know the language code\(s\) \['xx'\]"):
        Tagger.load(tiny_bundle, languages="en,xx")


def test_importing_the_api_loads_no_web_framework_database_or_torch():
    code = (
        "import sys, belonging; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'sqlalchemy', 'torch', "
        "'uvicorn', 'alembic', 'transformers'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
