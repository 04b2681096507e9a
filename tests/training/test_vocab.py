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


def test_wordlist_words_keep_pieces_no_corpus_comment_used(tiny_bundle):
    from tokenizers import Tokenizer

    from training.vocab import wordlist_texts

    lines = wordlist_texts(["pt", "ja"], 200)
    portuguese = " ".join(lines[: len(lines) // 2])
    assert " de " in f" {portuguese} " and " De " in f" {portuguese} "  # as written mid-sentence and at its start
    assert not any(" " in line for line in wordlist_texts(["ja"], 50))  # run together as Japanese is written
    full_json = json.loads((tiny_bundle.parent.parent / "work" / "tokenizer.json").read_text())
    plain = plan_vocabulary(full_json, KEPT_TEXTS, prefix="query: ")
    with_words = plan_vocabulary(full_json, KEPT_TEXTS, prefix="query: ", wordlist_texts=lines)
    assert with_words.wordlist_pieces == len(with_words.kept) - len(plain.kept) > 0
    frequent = " ".join(reversed(lines[0].split()[:8]))  # eight of the most frequent words, another order
    common = Tokenizer.from_str(json.dumps(full_json)).encode(f"query: {frequent}").ids
    assert not set(common) <= set(plain.kept) and set(common) <= set(with_words.kept)


def test_wordlist_language_without_a_list_is_named():
    import pytest

    from training.vocab import VocabError, wordlist_texts

    with pytest.raises(VocabError, match="no word list for xx"):
        wordlist_texts(["en", "xx"], 10)


def test_held_out_rows_are_never_fit_and_seed_ones_measure_coverage():
    from types import SimpleNamespace

    from training.vocab import vocab_corpus

    def row(text, split, source):
        return SimpleNamespace(text=text, lang="ja", split=split, source=source)

    prepared = [
        row("ようこそ", "train", "seeds"),
        row("はじめまして", "test", "seeds"),
        row("どこから？", "dev", "annotated"),
    ]
    corpus = vocab_corpus(None, [], prepared)
    assert corpus.fit_texts == ["ようこそ"]
    assert [c.text for c in corpus.seed_holdout] == ["はじめまして"]
