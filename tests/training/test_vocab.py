"""Vocabulary pruning on the tiny tokenizer and model: ids remapped in both, scores unchanged where
every piece is kept, unknown characters fall back to <unk>."""

import json

import numpy as np
import onnx

from serving.engine.bundle import Bundle, load_bundle
from serving.engine.predictor import Predictor
from training.vocab import CorpusText, coverage, plan_vocabulary, prune_embeddings, prune_tokenizer

KEPT_TEXTS = ["Welcome to the group, so glad you found us!", "欢迎欢迎，常来玩呀。"]


def test_pruned_bundle_scores_kept_text_exactly_like_the_full_one(tiny_bundle, tmp_path):
    work = tiny_bundle.parent.parent / "work"
    full_json = json.loads((work / "tokenizer.json").read_text())
    plan = plan_vocabulary(full_json, KEPT_TEXTS, prefix="query: ")
    assert plan.used < plan.full_size and plan.kept[:4] == [0, 1, 2, 3]  # specials keep their ids
    pruned_json = prune_tokenizer(full_json, plan.kept)
    model = onnx.load(str(work / "model.fp32.onnx"))
    before, after = prune_embeddings(model, plan.kept)
    assert after == len(plan.kept) < before

    folder = tmp_path / "pruned"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(pruned_json))
    onnx.save(model, str(folder / "model.onnx"))
    meta = load_bundle(tiny_bundle).meta
    pruned = Predictor(Bundle(folder, meta))
    full = Predictor(Bundle(work, meta), model_path=work / "model.fp32.onnx")
    np.testing.assert_allclose(pruned.probabilities(KEPT_TEXTS), full.probabilities(KEPT_TEXTS), atol=1e-5)
    (encoded,) = pruned.encode(["Добро пожаловать"])  # no piece of it was kept but single characters
    assert max(encoded.ids) < len(plan.kept)

    report = coverage(
        full_json, pruned_json, plan.kept, [CorpusText(t, "xx", "t") for t in KEPT_TEXTS], prefix="query: "
    )
    assert report["xx"]["token_coverage"] == 1.0 and report["xx"]["comments_unchanged"] == 1.0
    other = "Bem-vinda! de onde você é? obrigado pela ajuda"
    from tokenizers import Tokenizer

    dropped = set(Tokenizer.from_str(json.dumps(full_json)).encode(other).ids) - set(plan.kept)
    assert dropped  # pieces no kept text used
    report = coverage(full_json, pruned_json, plan.kept, [CorpusText(other, "pt", "t")])
    assert report["pt"]["token_coverage"] < 1.0
