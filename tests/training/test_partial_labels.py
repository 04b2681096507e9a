"""Partial labels: sources that label only some tags, masked loss, recipes, and safe bundle builds."""

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from belonging_cli.main import app
from serving.engine.bundle import load_bundle
from tests.conftest import FIXTURES
from training.data import UNKNOWN, DataError, parse_record
from training.evaluate import challenge_report, crossfit_report
from training.metrics import multilabel_metrics
from training.recipe import Recipe
from training.sources import map_davidson, map_germeval2018, map_goemotions, map_korean_hate_speech
from training.train import masked_bce, pos_weights, sample_epoch

runner = CliRunner()


def test_masked_tag_gets_no_gradient(tiny_config):
    from training.model import build_tagger

    model = build_tagger(tiny_config)
    ids = torch.randint(5, 60, (4, 9))
    mask = torch.ones_like(ids)
    targets = torch.tensor([[1.0, 0.0, UNKNOWN], [0.0, 1.0, UNKNOWN], [1.0, 1.0, UNKNOWN], [0.0, 0.0, UNKNOWN]])
    loss = masked_bce(model(ids, mask), targets, pos_weight=torch.tensor([2.0, 3.0, 4.0]))
    loss.backward()
    grad = model.head.weight.grad
    assert torch.count_nonzero(grad[2]) == 0 and model.head.bias.grad[2] == 0  # hostile: unknown everywhere
    assert torch.count_nonzero(grad[0]) > 0 and torch.count_nonzero(grad[1]) > 0


def test_masked_loss_is_the_mean_over_known_labels_only():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    targets = torch.tensor([[1.0, UNKNOWN, 0.0], [UNKNOWN, 1.0, UNKNOWN]])
    known = targets >= 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], targets[known])
    assert torch.isclose(masked_bce(logits, targets, None), expected)
    # Filling the unknowns with 0 would give another (wrong) loss: the mask is what makes the difference.
    assert not torch.isclose(masked_bce(logits, targets.clamp(min=0), None), expected)


def test_pos_weight_and_metrics_ignore_unknown_labels():
    y = np.array([[1, UNKNOWN], [0, UNKNOWN], [0, 1], [0, 0]])
    assert pos_weights(y.astype(np.float32), cap=10).tolist() == [3.0, 1.0]
    probs = np.array([[0.9, 0.9], [0.1, 0.9], [0.2, 0.8], [0.3, 0.1]])
    report = multilabel_metrics(y, probs, ["a", "b"], [0.5, 0.5])
    assert report["tags"]["a"]["n"] == 4 and report["tags"]["b"]["n"] == 2
    assert report["tags"]["b"]["precision"] == 1.0 and report["tags"]["b"]["recall"] == 1.0


def test_null_tag_columns_are_unknown_but_one_tag_must_be_known():
    row = parse_record({"text": "x", "welcoming": None, "curious": None, "hostile": 1}, "f:1", "f-1")
    assert row.label_vector() == [UNKNOWN, UNKNOWN, 1] and not row.fully_labelled
    with pytest.raises(DataError, match="every tag is null"):
        parse_record({"text": "x", "welcoming": None, "curious": None, "hostile": None}, "f:1", "f-1")
    with pytest.raises(DataError, match=r"missing tag column\(s\) \['curious'\]"):
        parse_record({"text": "x", "welcoming": 0, "hostile": 1}, "f:1", "f-1")


def test_corpus_mappings_leave_undecided_tags_unknown():
    assert map_davidson({"davidson_class": "hate"}) == {"welcoming": None, "curious": None, "hostile": 1}
    assert map_davidson({"davidson_class": "offensive"}) is None  # profanity or attack: not decidable
    assert map_germeval2018({"raw": {"fine": "PROFANITY"}})["hostile"] == 0
    assert map_germeval2018({"raw": {"fine": "INSULT"}})["hostile"] == 1
    assert map_korean_hate_speech({"raw": {"hate": "offensive"}})["hostile"] == 1
    curious = map_goemotions({"text": "how did you make this?", "raw": {"emotions": ["curiosity"]}})
    assert curious == {"welcoming": 0, "curious": 1, "hostile": 0}
    angry_question = map_goemotions({"text": "why would you do that?", "raw": {"emotions": ["anger"]}})
    assert angry_question == {"welcoming": 0, "curious": None, "hostile": None}
    snark = map_goemotions({"text": "good for you, want a cookie", "raw": {"emotions": ["amusement"]}})
    assert snark == {"welcoming": 0, "curious": 0, "hostile": None}  # raters' "amused" can be a put-down
    neutral = map_goemotions({"text": "The bus was late.", "raw": {"emotions": ["neutral"]}})
    assert neutral == {"welcoming": 0, "curious": 0, "hostile": None}
    thanks = map_goemotions({"text": "Thank you so much", "raw": {"emotions": ["gratitude"]}})
    assert thanks["welcoming"] is None and thanks["hostile"] == 0


def test_epoch_sampling_caps_each_source_and_changes_per_epoch():
    sources = ["big"] * 100 + ["small"] * 10
    first = sample_epoch(sources, {"big": 20}, np.random.default_rng(1))
    second = sample_epoch(sources, {"big": 20}, np.random.default_rng(2))
    assert len(first) == 30 and sum(i >= 100 for i in first) == 10  # the small source comes whole
    assert set(first) != set(second)
    repeated = sample_epoch(sources, {"small": 25}, np.random.default_rng(3))
    small = [i for i in repeated if i >= 100]
    assert len(small) == 25 and set(small) == set(range(100, 110))  # every row, then 15 repeats
    assert max(small.count(i) for i in set(small)) == 3


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture()
def tiny_recipe(tmp_path):
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    hostile = ["go back where you came from", "you people are vermin", "nobody wants you here, leave"]
    calm = ["the weather is nice today", "I read the news about the ban", "this bus is late again"]
    _write_jsonl(
        corpora / "cold_like.jsonl",
        [
            {"id": f"c{i}", "lang": "en", "text": f"{text} {i}", "hostile": label}
            for i in range(8)
            for text, label in ((hostile[i % 3], 1), (calm[i % 3], 0))
        ],
    )
    shutil.copy(FIXTURES / "tiny_rows.jsonl", tmp_path / "labelled.jsonl")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f"""
corpora = "{corpora}"
[train]
max_length = 32
[evaluation]
eval_data = ["{{corpora}}/not_here_eval.jsonl"]
[[sources]]
name = "mine"
path = "{tmp_path / "labelled.jsonl"}"
format = "labelled"
[[sources]]
name = "coldish"
path = "{{corpora}}/cold_like.jsonl"
format = "cold"
tags = ["hostile"]
per_epoch = 6
select = true
optional = true
[[sources]]
name = "absent"
path = "{{corpora}}/absent.jsonl"
format = "davidson"
optional = true
""")
    return recipe


def test_tiny_multi_source_recipe_trains_end_to_end(tiny_recipe, tiny_base, tmp_path):
    out, work = tmp_path / "models" / "multi", tmp_path / "work"
    result = runner.invoke(
        app,
        [
            "train",
            "--recipe",
            str(tiny_recipe),
            "--out",
            str(out),
            "--work",
            str(work),
            "--base",
            str(tiny_base),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--splits",
            str(tmp_path / "none.jsonl"),
            "--config",
            str(FIXTURES / "tiny_train.toml"),
        ],
    )
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "not found: absent" in output and "training without them" in output
    assert output.count("not found: absent") == 1  # listed once, not per stage
    prepared = [json.loads(line) for line in (work / "prepared.jsonl").read_text().splitlines()]
    cold_rows = [r for r in prepared if r["source"] == "coldish"]
    assert cold_rows and all(r["welcoming"] is None and r["curious"] is None for r in cold_rows)
    assert all(r["hostile"] in (0, 1) for r in cold_rows)
    report = json.loads((work / "prepare_report.json").read_text())
    assert set(report["sources"]) == {"mine", "coldish"} and report["skipped_sources"] == ["absent"]
    history = json.loads((work / "history.json").read_text())
    # 6 cold rows a epoch plus every train row of the labelled file, in batches of 4.
    train_rows = report["sources"]["mine"]["train"] + 6
    assert history[0]["step"] == -(-train_rows // 4)
    assert set(history[0]["dev_by_source"]["coldish"]["pr_auc"]) <= {"hostile"}
    assert history[0]["selection"]["metric"] == "mean PR-AUC of coldish"
    card = (out / "MODEL_CARD.md").read_text()
    assert "| coldish | cold | hostile |" in card and "Skipped (not found at build time): absent." in card
    assert load_bundle(out).meta.name == "multi"


def test_missing_required_input_fails_before_training(tiny_recipe, tmp_path):
    text = (
        tiny_recipe.read_text()
        .replace('name = "absent"', 'name = "needed"')
        .replace('format = "davidson"\noptional = true', 'format = "davidson"')
    )
    tiny_recipe.write_text(text)
    work = tmp_path / "work2"
    result = runner.invoke(
        app, ["train", "--recipe", str(tiny_recipe), "--out", str(tmp_path / "m"), "--work", str(work)]
    )
    assert result.exit_code == 2
    assert "missing required training data: needed (" in " ".join(result.output.split())
    assert not work.exists() and not (tmp_path / "m").exists()


def test_missing_eval_file_named_on_the_command_line_fails_fast(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(FIXTURES / "tiny_rows.jsonl"),
            "--out",
            str(tmp_path / "m"),
            "--eval-data",
            str(tmp_path / "nope.jsonl"),
        ],
    )
    assert result.exit_code == 2 and f"no such file or folder: {tmp_path / 'nope.jsonl'}" in result.output


def test_failed_publish_keeps_the_previous_complete_bundle(tiny_bundle, tmp_path, monkeypatch):
    from training import pipeline

    work = tiny_bundle.parent.parent / "work"
    out = tmp_path / "models" / "kept"
    shutil.copytree(tiny_bundle, out)
    before = (out / "bundle.json").read_text()

    def broken_card(*args, **kwargs):
        raise KeyboardInterrupt  # as if the build were interrupted while evaluating

    monkeypatch.setattr(pipeline, "card_stage", broken_card)
    with pytest.raises(KeyboardInterrupt):
        pipeline.publish(work, out)
    assert (out / "bundle.json").read_text() == before
    load_bundle(out)  # still complete: `belong serve` would accept it
    fresh = tmp_path / "models" / "fresh"
    with pytest.raises(KeyboardInterrupt):
        pipeline.publish(work, fresh)
    assert not fresh.exists()


def test_recipe_errors_name_the_source_and_key(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[[sources]]\nname = "x"\npath = "a.jsonl"\nformat = "nope"\n')
    with pytest.raises(DataError, match=r"source 'x': unknown format 'nope'"):
        Recipe.load(recipe)
    recipe.write_text('[[sources]]\nname = "x"\npath = "a.jsonl"\nper_epoch = -1\n')
    with pytest.raises(DataError, match=r"source 'x': per_epoch must be a whole number >= 0"):
        Recipe.load(recipe)
    recipe.write_text('[[sources]]\nname = "x"\npath = "a.jsonl"\nweight = 2\n')
    with pytest.raises(DataError, match=r"sources\[0\]: unknown keys \['weight'\]"):
        Recipe.load(recipe)


def test_crossfit_picks_thresholds_on_the_other_half():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(400, 1))
    probs = np.clip(y * 0.3 + rng.random((400, 1)) * 0.7, 0, 1)
    report = crossfit_report(y, probs, ["hostile"], [f"id{i}" for i in range(400)])
    tag = report["tags"]["hostile"]
    assert len(tag["thresholds"]) == 2 and tag["n"] == 400
    assert 0.6 < tag["f1"] < 1.0  # informative scores, but not perfect
    low, high = report["macro_f1_interval"]
    assert low < report["macro_f1"] < high and high - low < 0.2


def test_challenge_report_scores_hostile_decisions_per_case_and_language():
    from training.data import Row

    def row(case, lang, hostile):
        return Row(
            text="t",
            labels={"welcoming": 0, "curious": 0, "hostile": hostile},
            id=f"{case}{lang}{hostile}",
            lang=lang,
            source="challenge",
            kind=case,
        )

    rows = [row("negated_hate", "en", 0), row("negated_hate", "zh", 0), row("threat", "en", 1)]
    probs = np.array([[0, 0, 0.9], [0, 0, 0.1], [0, 0, 0.8]])
    report = challenge_report(rows, probs, ["welcoming", "curious", "hostile"], [0.5, 0.5, 0.5])
    assert report["table"]["negated_hate"] == {"en": 0.0, "zh": 1.0}
    assert report["table"]["threat"] == {"en": 1.0}
    assert report["cases"] == ["negated_hate", "threat"]  # not-hostile types first


def test_annotations_join_text_by_id_and_a_recipe_split_holds_the_whole_round_out(tmp_path):
    from training.sources import read_source

    corpora = tmp_path / "corpora"
    corpora.mkdir()
    _write_jsonl(
        corpora / "corpus.jsonl",
        [
            {"id": "a", "lang": "de", "text": "Flüchtlinge sind keine Ratten"},
            {"id": "b", "lang": "en", "text": "hi all"},
        ],
    )
    labels = {"corpus": "corpus.jsonl", "welcoming": 0, "curious": 0, "hostile": 0}
    _write_jsonl(
        tmp_path / "round.jsonl",
        [
            {"id": "a", **labels, "split": "train"},
            {"id": "b", **labels, "welcoming": 1, "split": "dev"},
            {"id": "gone", **labels, "split": "train"},  # its comment is no longer in the corpus
        ],
    )
    recipe = tmp_path / "recipe.toml"
    entry = f'path = "{tmp_path / "round.jsonl"}"\nformat = "annotations"\ntexts = "{corpora}"\n'
    recipe.write_text(f'[[sources]]\nname = "kept"\n{entry}[[sources]]\nname = "held"\n{entry}split = "test"\n')
    kept, held = Recipe.load(recipe).sources

    rows, unusable = read_source(kept)
    assert unusable == 1
    assert {r.id: (r.text, r.lang, r.split, r.labels["welcoming"]) for r in rows} == {
        "a": ("Flüchtlinge sind keine Ratten", "de", "train", 0),
        "b": ("hi all", "en", "dev", 1),
    }
    rows, _ = read_source(held)
    assert [r.split for r in rows] == ["test", "test"]
