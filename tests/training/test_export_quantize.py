"""The served model is all int8 (no fp32 weight MatMul left) with 4-bit embeddings; per-token scales
fix what one scale per tensor gets wrong; the export gate bounds per-comment drift, not only F1."""

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from serving.engine.bundle import Bundle, load_bundle
from serving.engine.predictor import Predictor
from training.config import TrainConfig
from training.export import int8_check
from training.quantize import (
    embed_4bit,
    fix_row_scales,
    normalize_rows,
    q4_blocks,
    quantize_matmuls,
    weight_matmuls,
)

TEXTS = ["Welcome!! where are you from?", "滚回去", "ok", "a much longer comment " * 10]


def test_served_model_has_no_fp32_weight_matmul_and_fp32_stays_out_of_the_bundle(tiny_bundle):
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    assert weight_matmuls(model) == {}
    ops = {n.op_type for n in model.graph.node}
    assert "GatherBlockQuantized" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    assert not (tiny_bundle / "model.fp32.onnx").exists()
    int8 = load_bundle(tiny_bundle).meta.metrics["int8"]
    assert {"drift_max", "drift_p99", "dev_macro_f1_int8", "per_token_matmuls"} <= set(int8)
    assert len(int8["per_token_matmuls"]) == int8["matmuls_int8"]  # the default: per-token scales everywhere


def test_q4_blocks_are_exact_on_q4_values():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 16, (5, 64))
    q[:, ::32] = 0  # every block holds its -8 * d value, as ggml's Q4_0 writes it
    d = (rng.random((5, 2)) + 0.01).astype(np.float16).astype(np.float32)  # ggml stores d as float16
    weights = ((q - 8).reshape(5, 2, 32) * d[..., None]).reshape(5, 64).astype(np.float32)
    packed, scales, error = q4_blocks(weights)
    assert error == 0.0 and packed.shape == (5, 32) and scales.shape == (5, 2)
    assert scales.dtype == np.float16 and np.array_equal(scales.astype(np.float32), d)


def _two_matmuls(weights: np.ndarray) -> onnx.ModelProto:
    """x -> (x @ W + b, x @ W2): two weight MatMuls sharing one input, as Q, K and V do."""
    hidden, out = weights.shape
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"], name="first"),
        helper.make_node("Add", ["xw", "b"], ["y"], name="bias"),
        helper.make_node("MatMul", ["x", "W2"], ["z"], name="second"),
    ]
    graph = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", out]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", "sequence", out]),
        ],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(weights[:, ::-1].copy(), "W2"),
            numpy_helper.from_array(np.linspace(-1, 1, out).astype(np.float32), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y", "z"], {"x": x})


def test_per_token_scales_fix_a_massive_activation_on_one_token(tmp_path):
    """The encoder's failure in miniature: token 0 (<s>) carries a value 300x the others'. One scale
    per tensor leaves the other tokens a few levels; row normalization keeps them accurate, and is
    exact before quantization."""
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.2, (64, 32)).astype(np.float32)
    x = rng.normal(0, 1, (3, 10, 64)).astype(np.float32)
    x[:, 0, 5] = 300.0
    expected = _run(_two_matmuls(weights), x)

    normalized = _two_matmuls(weights)
    assert normalize_rows(normalized) == 2
    assert sum(n.op_type == "Div" for n in normalized.graph.node) == 1  # one shared input, normalized once
    for got, want in zip(_run(normalized, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)

    errors = {}
    for name, model in (("per_tensor", _two_matmuls(weights)), ("per_token", normalized)):
        quantize_matmuls(model, tmp_path / f"{name}.onnx")
        quantized = onnx.load(str(tmp_path / f"{name}.onnx"))
        assert weight_matmuls(quantized) == {}
        y, _ = _run(quantized, x)
        errors[name] = float(np.abs(y - expected[0])[:, 1:].max())  # the ordinary tokens
    assert errors["per_token"] < 0.1 and 10 * errors["per_token"] < errors["per_tensor"], errors


def test_fixed_row_scales_make_a_comment_s_output_independent_of_its_batch(tmp_path):
    """Dynamic int8 takes one range per call: a one-sided comment scored next to one whose rows reach
    -1 gets coarser levels. With the fixed scale its outputs are the same alone and in company."""
    rng = np.random.default_rng(1)
    weights = rng.normal(0, 0.2, (64, 32)).astype(np.float32)
    one_sided = (np.abs(rng.normal(0, 1, (1, 6, 64))) - 0.3).astype(np.float32)
    other_side = -np.abs(rng.normal(0, 1, (1, 6, 64))).astype(np.float32)
    together = np.concatenate([one_sided, other_side])
    expected = _run(_two_matmuls(weights), one_sided)[0]
    outputs = {}
    for fixed in (False, True):
        model = _two_matmuls(weights)
        normalize_rows(model)
        quantize_matmuls(model, tmp_path / "model.onnx")
        quantized = onnx.load(str(tmp_path / "model.onnx"))
        if fixed:
            assert fix_row_scales(quantized) == 1  # the one input both MatMuls share
        outputs[fixed] = (_run(quantized, one_sided)[0], _run(quantized, together)[0][:1])
    dynamic_alone, dynamic_in_company = outputs[False]
    assert np.abs(dynamic_alone - dynamic_in_company).max() > 1e-3  # the batch dependence, shown
    fixed_alone, fixed_in_company = outputs[True]
    np.testing.assert_array_equal(fixed_alone, fixed_in_company)
    assert np.abs(fixed_alone - expected).max() < 0.1  # and still the fp32 product, within int8 error


def test_only_the_named_matmuls_get_per_token_scales():
    model = _two_matmuls(np.ones((8, 4), np.float32))
    assert normalize_rows(model, only=["second"]) == 1
    rescaled = [n.name for n in model.graph.node if n.op_type == "Mul"]
    assert rescaled == ["second/Rescale"]


@pytest.mark.parametrize("fixed_ranges", [False, True])
def test_per_token_model_tracks_fp32_on_the_tiny_encoder(tiny_bundle, tmp_path, fixed_ranges):
    work = tiny_bundle.parent.parent / "work"
    meta = load_bundle(tiny_bundle).meta
    fp32 = Predictor(Bundle(work, meta), model_path=work / "model.fp32.onnx")
    expected = fp32.logits(fp32.encode(TEXTS))
    model = onnx.load(str(work / "model.fp32.onnx"))
    assert normalize_rows(model) == len(weight_matmuls(model))
    inputs = {a for a, _ in weight_matmuls(model).values()}
    quantize_matmuls(model, tmp_path / "model.onnx")
    quantized = onnx.load(str(tmp_path / "model.onnx"))
    if fixed_ranges:
        assert fix_row_scales(quantized) == len(inputs)
        left = [n.input[0] for n in quantized.graph.node if n.op_type == "DynamicQuantizeLinear"]
        assert len(left) == 1 and left[0] not in inputs  # only the classifier head's pooled input
    assert embed_4bit(quantized) is not None
    onnx.save(quantized, str(tmp_path / "model.onnx"))
    served = Predictor(Bundle(work, meta), model_path=tmp_path / "model.onnx")
    assert float(np.abs(served.logits(served.encode(TEXTS)) - expected).max()) < 0.15


def test_gate_fails_on_drift_even_when_macro_f1_holds():
    """A served model whose tags barely change on dev but whose scores moved on many comments."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (400, 3))
    p_fp32 = np.where(y == 1, 0.9, 0.1) + rng.normal(0, 0.02, y.shape)
    moved = p_fp32.copy()
    moved[::20] += np.where(y[::20] == 1, -0.3, 0.3)  # 5% of comments moved by 0.3, still on their side
    config = TrainConfig(int8_max_f1_drop=0.005, int8_max_drift_p99=0.1)
    texts = [f"comment {i}" for i in range(len(y))]
    args = (["welcoming", "curious", "hostile"], [0.5, 0.5, 0.5], texts)
    check = int8_check(y, p_fp32, moved, *args, config)
    assert check["dev_macro_f1_int8"] == check["dev_macro_f1_fp32"]
    assert check["drift_p99"] > 0.25 and not check["passed"]
    assert int8_check(y, p_fp32, moved, *args, dataclasses.replace(config, int8_max_drift_p99=0.35))["passed"]


def test_export_adds_per_token_matmuls_until_the_gate_passes_or_fails_loudly(tiny_bundle, tmp_path, caplog):
    """Starting from one scale per tensor everywhere, a gate nothing can pass walks 0 -> 8 -> 24 ...
    -> all MatMuls on per-token scales, then keeps the 2, 4, 8 most sensitive fp32, then stops the
    export with the figures."""
    import logging

    import pytest

    from tests.conftest import FIXTURES
    from training.data import load_rows
    from training.export import ExportError, build_served

    work = tiny_bundle.parent.parent / "work"
    meta = load_bundle(tiny_bundle).meta.model_dump(mode="json")
    rows = load_rows([FIXTURES / "tiny_rows.jsonl"]).rows[:40]
    config = TrainConfig(
        base_model="unused", max_length=32, int8_per_token_matmuls=0, int8_max_drift_p99=1e-9, text_prefix="query: "
    )
    failed = pytest.raises(ExportError, match="the 8 most sensitive kept fp32.*drift p99")
    with caplog.at_level(logging.INFO, logger="training.export"), failed:
        build_served(
            work / "model.fp32.onnx",
            work / "tokenizer.json",
            tmp_path / "out",
            config,
            meta,
            dev_rows=rows,
            calibration_texts=[r.text for r in rows[:8]],
            corpus=None,
        )
    total = len(weight_matmuls(onnx.load(str(work / "model.fp32.onnx"))))
    logged = [m for m in caplog.messages if m.startswith("int8 with ")]
    rounds = [int(m.split("int8 with ")[1].split("/")[0]) for m in logged]
    kept = [int(m.split("scales, ")[1].split(" kept")[0]) for m in logged]
    per_token = rounds[: rounds.index(total) + 1]
    assert per_token[0] == 0 and per_token == sorted(set(per_token)) and len(per_token) >= 3
    assert rounds[len(per_token) :] == [total] * 3 and kept == [0] * len(per_token) + [2, 4, 8]
