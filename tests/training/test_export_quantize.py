"""The served model is all int8 (no fp32 weight MatMul left) with 4-bit embeddings, and per-token
activation scales agree with fp32 at least as well as one scale per tensor."""

import numpy as np
import onnx

from serving.engine.bundle import Bundle, load_bundle
from serving.engine.predictor import Predictor
from training.quantize import embed_4bit, q4_blocks, quantize_matmuls, quantize_matmuls_per_token, weight_matmuls

TEXTS = ["Welcome!! where are you from?", "滚回去", "ok", "a much longer comment " * 10]


def test_served_model_has_no_fp32_weight_matmul_and_fp32_stays_out_of_the_bundle(tiny_bundle):
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    assert weight_matmuls(model) == {}
    ops = {n.op_type for n in model.graph.node}
    assert "GatherBlockQuantized" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    assert not (tiny_bundle / "model.fp32.onnx").exists()
    int8 = load_bundle(tiny_bundle).meta.metrics["int8"]
    assert {"drift_max", "drift_p99", "dev_macro_f1_int8", "per_token_matmuls"} <= set(int8)


def test_q4_blocks_are_exact_on_q4_values():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 16, (5, 64))
    q[:, ::32] = 0  # every block holds its -8 * d value, as ggml's Q4_0 writes it
    d = rng.random((5, 2)).astype(np.float16).astype(np.float32) + 0.01
    weights = ((q - 8).reshape(5, 2, 32) * d[..., None]).reshape(5, 64).astype(np.float32)
    packed, scales, error = q4_blocks(weights)
    assert error == 0.0 and packed.shape == (5, 32) and scales.shape == (5, 2)


def test_per_token_scales_track_fp32(tiny_bundle, tmp_path):
    work = tiny_bundle.parent.parent / "work"
    meta = load_bundle(tiny_bundle).meta
    fp32 = Predictor(Bundle(work, meta), model_path=work / "model.fp32.onnx")
    expected = fp32.logits(fp32.encode(TEXTS))
    model = onnx.load(str(work / "model.fp32.onnx"))
    count = len(weight_matmuls(model))
    assert quantize_matmuls_per_token(model) == count
    assert embed_4bit(model) is not None
    per_token = tmp_path / "per_token.onnx"
    onnx.save(model, str(per_token))
    per_tensor = tmp_path / "per_tensor.onnx"
    quantize_matmuls(onnx.load(str(work / "model.fp32.onnx")), per_tensor)
    errors = {}
    for path in (per_token, per_tensor):
        predictor = Predictor(Bundle(work, meta), model_path=path)
        errors[path.stem] = float(np.abs(predictor.logits(predictor.encode(TEXTS)) - expected).max())
    assert errors["per_token"] < 0.15, errors
