"""Seeds subset -> train a few steps -> export -> evaluate -> score, on a tiny random model."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from belonging_cli.main import app
from serving.engine.bundle import BundleError, load_bundle
from serving.engine.predictor import Predictor
from tests.conftest import FIXTURES, ROOT

runner = CliRunner()


def test_bundle_has_every_file_and_valid_meta(tiny_bundle):
    for name in (
        "model.onnx",
        "tokenizer.json",
        "bundle.json",
        "MODEL_CARD.md",
        "pr_curves.png",
        "calibration.png",
    ):
        assert (tiny_bundle / name).stat().st_size > 0, name
    bundle = load_bundle(tiny_bundle)
    meta = bundle.meta
    assert meta.labels == ["welcoming", "curious", "hostile"]
    assert meta.text_prefix == "query: " and meta.max_length == 32
    assert meta.training_config_digest.startswith("sha256:") and meta.data_digest.startswith("sha256:")
    assert max(meta.metrics["parity"]["max_abs_diff"].values()) <= 1e-4
    assert {"dev_macro_f1_fp32", "dev_macro_f1_int8"} <= set(meta.metrics["int8"])
    assert "test split: tiny_rows" in meta.metrics["evaluation"]  # one report per source's test split
    card = (tiny_bundle / "MODEL_CARD.md").read_text()
    assert card.index("Limitations and bias") < card.index("## Metrics")
    assert "| welcoming |" in card and "![pr_curves.png](pr_curves.png)" in card


def test_int8_model_is_smaller_and_agrees_with_fp32(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    int8 = Predictor(bundle)
    fp32 = Predictor(bundle, model_path=tiny_bundle.parent.parent / "work" / "model.fp32.onnx")
    texts = ["Welcome!! where are you from?", "滚回去", "ok", "a much longer comment " * 20]
    p8 = int8.probabilities(texts)
    assert p8.shape == (4, 3) and ((p8 >= 0) & (p8 <= 1)).all()
    # Compare raw logits: calibration on a 6-row dev split can pick extreme temperatures.
    encoded = int8.encode(texts)
    assert np.abs(int8.logits(encoded) - fp32.logits(encoded)).max() < 0.15
    assert (tiny_bundle / "model.onnx").stat().st_size < (
        tiny_bundle.parent.parent / "work" / "model.fp32.onnx"
    ).stat().st_size


def test_predictions_follow_thresholds_and_flag_truncation(tiny_bundle):
    predictor = Predictor.from_path(tiny_bundle)
    long_text = "word " * 200
    short, long = predictor.predict(["hello there", long_text])
    assert not short.truncated and long.truncated
    for prediction in (short, long):
        assert set(prediction.scores) == {"welcoming", "curious", "hostile"}
        expected = [t for t in predictor.labels if prediction.scores[t] >= predictor.bundle.meta.thresholds[t]]
        assert prediction.tags == expected


def test_order_of_batch_does_not_change_scores(tiny_bundle):
    texts = ["short", "a somewhat longer comment here", "mid length one", "x " * 25]
    # fp32: padding and length-sorting change nothing. int8: dynamic quantization scales activations
    # per batch, so batch-mates move logits slightly (more on this 32-wide toy than on e5). Logits: a
    # tiny dev split can calibrate extreme temperatures that magnify any difference.
    work = tiny_bundle.parent.parent / "work"
    for model_path, tolerance in ((work / "model.fp32.onnx", 1e-5), (tiny_bundle / "model.onnx", 0.1)):
        predictor = Predictor(load_bundle(tiny_bundle), model_path=model_path)
        encoded = predictor.encode(texts)
        together = np.vstack([predictor.logits(encoded[:2]), predictor.logits(encoded[2:])])
        alone = np.vstack([predictor.logits([e]) for e in encoded])
        assert np.abs(together - alone).max() < tolerance, model_path


def test_literal_special_tokens_are_plain_text(tiny_bundle):
    predictor = Predictor.from_path(tiny_bundle)
    (encoded,) = predictor.encode(["<s> hi </s>"])
    bos, eos = predictor.tokenizer.token_to_id("<s>"), predictor.tokenizer.token_to_id("</s>")
    assert encoded.ids[0] == bos and encoded.ids[-1] == eos
    assert bos not in encoded.ids[1:-1] and eos not in encoded.ids[1:-1]


def test_loader_names_what_is_missing(tiny_bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "MODEL_CARD.md").unlink()
    (broken / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"incomplete: missing tokenizer.json, MODEL_CARD.md"):
        load_bundle(broken)
    shutil.copy(tiny_bundle / "MODEL_CARD.md", broken)
    shutil.copy(tiny_bundle / "tokenizer.json", broken)
    meta = json.loads((broken / "bundle.json").read_text())
    (broken / "bundle.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "data_digest"}))
    with pytest.raises(BundleError, match="bundle.json is invalid: data_digest: Field required"):
        load_bundle(broken)
    del meta["thresholds"]["hostile"]
    (broken / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"thresholds lacks a value for label\(s\) \['hostile'\]"):
        load_bundle(broken)


def test_evaluate_cli_prints_json_metrics(tiny_bundle):
    result = runner.invoke(
        app, ["evaluate", "--bundle", str(tiny_bundle), "--data", str(FIXTURES / "tiny_rows.jsonl"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["reports"][str(FIXTURES / "tiny_rows.jsonl")]
    assert report["overall"]["n"] == 30
    assert set(report["overall"]["tags"]["hostile"]) >= {"precision", "recall", "f1", "roc_auc", "pr_auc", "ece"}
    assert set(report["by_lang"]) == {"en", "zh", "es", "pt"}


def test_evaluate_cli_refuses_incomplete_bundle(tmp_path):
    result = runner.invoke(app, ["evaluate", "--bundle", str(tmp_path), "--data", "x.jsonl"])
    assert result.exit_code == 2
    assert "is incomplete: missing model.onnx, tokenizer.json, bundle.json, MODEL_CARD.md" in result.output


def test_score_cli_keeps_order_fields_and_reports_bad_lines(tiny_bundle, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"id": "a", "text": "welcome!", "thread": 7}\n{"id": "b"}\nnot json\n'
        b'{"id": "c", "text": "   "}\n{"id": "d", "text": "go away"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "--bundle", str(tiny_bundle), "--input", str(source), "--output", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line.get("id") for line in lines] == ["a", "b", None, "c", "d"]
    assert lines[0]["thread"] == 7 and set(lines[0]["scores"]) == {"welcoming", "curious", "hostile"}
    assert all(0 <= p <= 1 for p in lines[4]["scores"].values()) and isinstance(lines[4]["tags"], list)
    assert lines[1]["error"] == "line 2: missing or empty `text`"
    assert lines[2]["error"].startswith("line 3: invalid JSON")
    assert lines[3]["error"] == "line 4: missing or empty `text`" and "scores" not in lines[3]
    assert "3 lines scored, 2 with errors" not in result.output and "2 lines scored, 3 with errors" in result.output


def test_train_cli_on_a_seeds_subset_with_resume(tiny_base, tmp_path):
    seeds = sorted((ROOT / "seeds").glob("*.jsonl"))
    if len(seeds) < 2:
        pytest.skip("seed files not present")
    subset = tmp_path / "subset.jsonl"
    with open(subset, "w") as handle:
        for path in seeds[:3]:
            handle.writelines(path.read_text(encoding="utf-8").splitlines(keepends=True)[:40])
    args = [
        "train",
        "--data",
        str(subset),
        "--out",
        str(tmp_path / "models" / "sub"),
        "--base",
        str(tiny_base),
        "--work",
        str(tmp_path / "work"),
        "--max-steps",
        "2",
        "--max-length",
        "32",
        "--batch-size",
        "8",
        "--splits",
        str(tmp_path / "none.jsonl"),
        "--config",
        str(FIXTURES / "tiny_train.toml"),
        "--monitor",
        str(FIXTURES / "tiny_rows.jsonl"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    history = json.loads((tmp_path / "work" / "history.json").read_text())
    assert history[-1]["step"] == 2
    assert set(history[-1]["monitor"]["pr_auc"]) == {"welcoming", "curious", "hostile"}
    assert load_bundle(tmp_path / "models" / "sub").meta.name == "sub"
    # Resuming a finished run trains no further step and still exports.
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "work" / "history.json").read_text())[-1]["step"] == 2


def test_train_cli_reports_bad_config(tmp_path):
    toml = tmp_path / "bad.toml"
    toml.write_text("epochs = 3\nwarmup = 0.2\n")
    result = runner.invoke(app, ["train", "--data", "seeds", "--out", str(tmp_path / "m"), "--config", str(toml)])
    assert result.exit_code == 2
    assert "unknown config keys: ['warmup']" in result.output
