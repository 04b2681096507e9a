"""Packed batches: the planner's layouts, the model inputs, and a real packed model scoring each
comment as if it were alone."""

import numpy as np

from serving.engine.packing import layout_cost, packed_feeds, plan_packs
from serving.engine.predictor import Predictor


def test_every_comment_lands_in_exactly_one_pack_and_the_plan_never_costs_more_than_padding():
    rng = np.random.default_rng(3)
    for _ in range(200):
        lengths = rng.integers(3, 97, rng.integers(1, 40)).tolist()
        packs = plan_packs(lengths)
        assert sorted(i for pack in packs for i in pack) == list(range(len(lengths)))
        padded = [[i] for i in range(len(lengths))]
        assert layout_cost(lengths, packs) <= layout_cost(lengths, padded)


def test_short_comments_of_mixed_lengths_share_a_row_and_long_alike_ones_do_not():
    assert plan_packs([40, 5, 6, 8]) == [[0, 3, 2, 1]]  # one row of 59 tokens instead of four of 40
    assert sorted(map(len, plan_packs([90, 91, 92, 93]))) == [1, 1, 1, 1]  # packing would only add attention


def test_packed_feeds_restart_positions_and_pool_each_comment_over_its_own_tokens():
    rows = [[7, 8, 9], [5], [4, 4]]
    feeds = packed_feeds(rows, [[0, 1], [2]], pad_id=1)
    assert feeds["input_ids"].tolist() == [[7, 8, 9, 5], [4, 4, 1, 1]]
    assert feeds["positions"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 0]]
    assert feeds["segments"].tolist() == [[0, 0, 0, 1], [2, 2, -1, -1]]
    pool = feeds["pool"]
    assert pool.shape == (3, 8) and np.allclose(pool.sum(axis=1), 1.0)
    assert np.allclose(pool[0, :3], 1 / 3) and pool[1, 3] == 1.0 and np.allclose(pool[2, 4:6], 0.5)
    assert not pool[:, 6:].any()  # padding is pooled by nobody


def test_a_packed_bundle_scores_each_comment_as_if_it_were_alone(tiny_bundle):
    predictor = Predictor.from_path(tiny_bundle, threads=1)
    assert predictor.packed  # training exports the packed layout by default
    # fp32: the export compared torch's padded model with the packed ONNX, each comment alone and all
    # of them in one row, and refuses a model beyond 1e-4.
    parity = predictor.bundle.meta.metrics["parity"]
    assert parity["layout"] == "packed" and any(k.endswith("in one pack") for k in parity["max_abs_diff"])
    assert max(parity["max_abs_diff"].values()) <= 1e-4
    assert "- batches: packed" in (tiny_bundle / "MODEL_CARD.md").read_text(encoding="utf-8")
    # int8 (the served model): the same within quantization noise, whichever row a comment shares.
    texts = ["Welcome!! where are you from?", "滚回去", "ok", "a much longer comment about the ban " * 3]
    encoded = predictor.encode(texts)
    alone = np.concatenate([predictor.logits([e]) for e in encoded])
    for packs in ([[0, 1, 2, 3]], [[3, 2], [1, 0]]):
        assert np.abs(predictor.logits(encoded, packs) - alone).max() < 1e-2
    assert np.abs(alone[0] - alone[1]).max() > 0.1  # while different comments differ far more


def test_packed_and_padded_exports_of_one_model_give_the_same_probabilities(tiny_config, tiny_bundle, tmp_path):
    import shutil

    from serving.engine.bundle import Bundle, load_bundle
    from training.export import export_onnx, export_packed_onnx
    from training.model import build_tagger
    from training.train import collate

    model = build_tagger(tiny_config).eval()
    shutil.copy(tiny_bundle / "tokenizer.json", tmp_path / "tokenizer.json")
    meta = load_bundle(tiny_bundle).meta
    probe = Predictor(Bundle(tmp_path, meta), model_path=tiny_bundle / "model.onnx")
    texts = ["Welcome!! where are you from?", "滚回去", "ok", "a much longer comment about the ban " * 3, "hi"]
    encoded = probe.encode(texts)
    rows = [e.ids for e in encoded]
    example = collate(rows[:2], np.zeros((2, 3)), probe.pad_id)
    export_onnx(model, tmp_path / "padded.onnx", (example.input_ids, example.attention_mask))
    export_packed_onnx(model, tmp_path / "packed.onnx", rows, probe.pad_id)
    padded = Predictor(Bundle(tmp_path, meta), model_path=tmp_path / "padded.onnx")
    packed = Predictor(Bundle(tmp_path, meta), model_path=tmp_path / "packed.onnx")
    assert packed.packed and not padded.packed
    assert np.abs(packed.probabilities_encoded(encoded) - padded.probabilities_encoded(encoded)).max() < 1e-5
