"""Export a trained tagger to ONNX, quantize it to int8, and check both against torch.

Usage (the `export` stage alone): `belong export --work runs/NAME --out models/NAME`.

Checks that fail the export loudly (ExportError):
- fp32 ONNX probabilities within `parity_tolerance` of torch on two input shapes;
- int8 macro-F1 on dev within `int8_max_f1_drop` of fp32 (same thresholds).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from serving.engine.bundle import FORMAT_VERSION, Bundle, BundleMeta, write_bundle_meta
from serving.engine.predictor import Predictor, load_tokenizer, pad_id_of
from training.config import TrainConfig
from training.data import Row
from training.metrics import multilabel_metrics
from training.model import Tagger
from training.train import collate

log = logging.getLogger(__name__)

FP32_FILE = "model.fp32.onnx"
SERVED_FILE = "model.onnx"
PARITY_TEXTS = [
    "Welcome to RedNote!! where are you from?",
    "滚回去，没人欢迎你们",
    "ok",
    "Bienvenida amiga 🤗 si necesitas ayuda con el chino, escríbeme. Aquí todos somos nuevos.",
    "literal <s> and </s> typed by a user",
]


class ExportError(RuntimeError):
    """An exported model disagrees with the trained one beyond tolerance."""


def export_onnx(model: Tagger, path: Path, example: tuple[torch.Tensor, torch.Tensor]) -> None:
    model.eval()
    torch.onnx.export(
        model,
        example,
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,  # the dynamo exporter fails on this torch/transformers pair
    )


def ffn_matmuls(model_path: Path) -> list[str]:
    """The feed-forward MatMuls of each transformer layer (HF BERT-family export names).

    Their inputs carry the large outlier activations of these encoders; quantizing them moved some
    real comments' probabilities by up to 0.74 on the default model (dev macro-F1 -0.013), keeping
    them fp32 bounded that at 0.18 (-0.003) for 40 MB more. Measured in the closing note of issue 2.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [
        n.name
        for n in graph.node
        if n.op_type == "MatMul"
        and ("/intermediate/dense/" in n.name or ("/output/dense/" in n.name and "/attention/" not in n.name))
    ]


def quantize_int8(source: Path, target: Path, keep_ffn_fp32: bool = True) -> list[str]:
    """Dynamic int8, per-channel (keeps encoder embeddings at cosine ~0.997 vs fp32; per-tensor: 0.988).

    Returns the nodes left in fp32.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = ffn_matmuls(source) if keep_ffn_fp32 else []
    quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=excluded)
    return excluded


def parity_check(model: Tagger, predictor: Predictor, tolerance: float) -> dict:
    """Compare calibrated probabilities from torch and ONNX on two batch/sequence shapes."""
    temperatures = torch.tensor(predictor.temperatures)
    results = {}
    for texts in (PARITY_TEXTS[:2], PARITY_TEXTS):
        encoded = predictor.encode(texts)
        batch = collate([e.ids for e in encoded], np.zeros((len(texts), len(predictor.labels))), predictor.pad_id)
        with torch.no_grad():
            expected = torch.sigmoid(model(batch.input_ids, batch.attention_mask) / temperatures).numpy()
        got = predictor.probabilities_encoded(encoded)
        shape = f"{tuple(batch.input_ids.shape)}"
        results[shape] = float(np.abs(expected - got).max())
    worst = max(results.values())
    if worst > tolerance:
        raise ExportError(f"ONNX fp32 probabilities differ from torch by {worst:.2e} > {tolerance:.0e}: {results}")
    log.info("parity fp32 ONNX vs torch: max |dp| %s", {k: f"{v:.1e}" for k, v in results.items()})
    return {"max_abs_diff": results, "tolerance": tolerance}


def int8_check(fp32: Predictor, int8: Predictor, rows: Sequence[Row], max_drop: float) -> dict:
    labels = fp32.labels
    y = np.array([r.label_vector(labels) for r in rows])
    texts = [r.text for r in rows]
    thresholds = list(fp32.thresholds)
    f1_fp32 = multilabel_metrics(y, fp32.probabilities(texts), labels, thresholds)["macro_f1"]
    f1_int8 = multilabel_metrics(y, int8.probabilities(texts), labels, thresholds)["macro_f1"]
    result = {"dev_macro_f1_fp32": f1_fp32, "dev_macro_f1_int8": f1_int8, "max_drop": max_drop}
    if f1_fp32 - f1_int8 > max_drop:
        raise ExportError(f"int8 dev macro-F1 {f1_int8:.4f} is more than {max_drop} below fp32 {f1_fp32:.4f}")
    log.info("int8 check: dev macro-F1 fp32 %.4f, int8 %.4f", f1_fp32, f1_int8)
    return result


def build_meta(
    name: str, config: TrainConfig, calibration: dict, data_digest: str, metrics: dict, model_file: str
) -> dict:
    created = datetime.now(timezone.utc).replace(microsecond=0)
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": created.strftime("%Y%m%dT%H%M%SZ") + "-" + data_digest.split(":")[-1][:8],
        "labels": list(config.labels),
        "thresholds": calibration["thresholds"],
        "temperatures": calibration["temperatures"],
        "max_length": config.max_length,
        "text_prefix": config.text_prefix,
        "model_file": model_file,
        "base_model": config.base_model,
        "pooling": config.pooling,
        "training_config_digest": config.digest(),
        "data_digest": data_digest,
        "metrics": metrics,
        "created_at": created.isoformat(),
    }


def export_bundle(
    model: Tagger,
    config: TrainConfig,
    work: Path,
    out: Path,
    *,
    name: str,
    calibration: dict,
    data_digest: str,
    dev_rows: Sequence[Row],
) -> Bundle:
    """Write model files, tokenizer and bundle.json into `out`; run both checks. No model card yet."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "tokenizer.json", out / "tokenizer.json")
    tokenizer = load_tokenizer(out / "tokenizer.json", config.max_length)
    example_ids = [e.ids for e in tokenizer.encode_batch([config.text_prefix + t for t in PARITY_TEXTS[:2]])]
    example = collate(example_ids, np.zeros((2, len(config.labels))), pad_id_of(tokenizer))

    started = time.perf_counter()
    export_onnx(model, out / FP32_FILE, (example.input_ids, example.attention_mask))
    log.info("exported %s in %.0fs", out / FP32_FILE, time.perf_counter() - started)
    fp32_meta = BundleMeta.model_validate(build_meta(name, config, calibration, data_digest, {}, FP32_FILE))
    fp32 = Predictor(Bundle(out, fp32_meta))
    metrics: dict = {"parity": parity_check(model, fp32, config.parity_tolerance), "dev": calibration["dev"]}

    if config.quantize:
        started = time.perf_counter()
        kept = quantize_int8(out / FP32_FILE, out / SERVED_FILE, config.int8_keep_ffn_fp32)
        log.info("quantized to int8 in %.0fs (%d FFN MatMuls kept fp32)", time.perf_counter() - started, len(kept))
        int8 = Predictor(Bundle(out, fp32_meta), model_path=out / SERVED_FILE)
        metrics["int8"] = {**int8_check(fp32, int8, dev_rows, config.int8_max_f1_drop), "fp32_nodes": len(kept)}
    else:
        shutil.copyfile(out / FP32_FILE, out / SERVED_FILE)
    meta = write_bundle_meta(out, build_meta(name, config, calibration, data_digest, metrics, SERVED_FILE))
    return Bundle(out, meta)
