"""Export a trained tagger to ONNX, prune its vocabulary, quantize it, and check it against torch and fp32.

Usage (the `export` stage alone): `belong export --work runs/NAME --out models/NAME`
(`--from-onnx FILE` re-exports a fp32 ONNX model, e.g. an older bundle's, without torch).

The fp32 model stays in the work folder (`runs/NAME/model.fp32.onnx`); the bundle ships only what
it serves: the int8 `model.onnx` and the (pruned) `tokenizer.json`.

Checks that fail the export loudly (ExportError):
- fp32 ONNX probabilities within `parity_tolerance` of torch on two input shapes;
- served int8 macro-F1 on dev within `int8_max_f1_drop` of fp32 with the same (pruned) vocabulary
  (same thresholds), and the 99th percentile of per-comment probability drift within
  `int8_max_drift_p99`; the worst drift and its comment are recorded next to them, and so are the
  vocabulary's own effect and the served model against the full fp32 one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from serving.engine.bundle import FORMAT_VERSION, Bundle, BundleMeta, write_bundle_meta
from serving.engine.packing import PACKED_INPUTS, packed_feeds
from serving.engine.predictor import Predictor, load_tokenizer, pad_id_of, sigmoid
from training.config import TrainConfig
from training.data import Row
from training.metrics import multilabel_metrics
from training.model import Tagger
from training.train import collate
from training.vocab import VocabCorpus, coverage, plan_vocabulary, prune_embeddings, prune_tokenizer, wordlist_texts

log = logging.getLogger(__name__)

FP32_FILE = "model.fp32.onnx"  # in the run's work folder: an artefact of training, not of the bundle
SERVED_FILE = "model.onnx"
PRUNED_FP32_FILE = "model.pruned-fp32.onnx"  # only while the export checks int8 against it
PARITY_TEXTS = [
    "Welcome to RedNote!! where are you from?",
    "滚回去，没人欢迎你们",
    "ok",
    "Bienvenida amiga 🤗 si necesitas ayuda con el chino, escríbeme. Aquí todos somos nuevos.",
    "literal <s> and </s> typed by a user",
]


class ExportError(RuntimeError):
    """An exported model disagrees with the trained one beyond tolerance."""


class PackedTagger(torch.nn.Module):
    """The tagger on packed batches (serving/engine/packing.py): several comments per row, attention
    kept inside each comment by a block-diagonal mask, positions restarting per comment, and mean
    pooling as a product with each comment's pooling weights. Same logits as the padded model."""

    def __init__(self, tagger: Tagger):
        super().__init__()
        self.tagger = tagger

    def forward(
        self, input_ids: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor, pool: torch.Tensor
    ) -> torch.Tensor:
        allowed = (segments.unsqueeze(2) == segments.unsqueeze(1)).unsqueeze(1)  # [packs, 1, width, width]
        # Additive, not boolean: a boolean mask exports with a NaN guard over every attention matrix.
        allowed = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)
        states = self.tagger.encoder(
            input_ids=input_ids,
            attention_mask=allowed,
            position_ids=positions,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        return self.tagger.head(pool @ states.reshape(-1, states.shape[-1]))


def export_packed_onnx(model: Tagger, path: Path, rows: Sequence[Sequence[int]], pad_id: int) -> None:
    """Export `PackedTagger`; `rows` (at least 3 token-id lists) make the example: two packs."""
    model.eval()
    feeds = packed_feeds(rows, [[0, 1], list(range(2, len(rows)))], pad_id)
    torch.onnx.export(
        PackedTagger(model).eval(),  # export restores the wrapper's mode on every submodule
        tuple(torch.from_numpy(feeds[name]) for name in PACKED_INPUTS),
        str(path),
        input_names=list(PACKED_INPUTS),
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "packs", 1: "width"},
            "positions": {0: "packs", 1: "width"},
            "segments": {0: "packs", 1: "width"},
            "pool": {0: "batch", 1: "tokens"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,  # the dynamo exporter fails on this torch/transformers pair
    )


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
        if predictor.packed:  # every comment in one row: attention must stay inside each
            got = sigmoid(predictor.logits(encoded, packs=[list(range(len(encoded)))]) / predictor.temperatures)
            results[f"{shape} in one pack"] = float(np.abs(expected - got).max())
    worst = max(results.values())
    if worst > tolerance:
        raise ExportError(f"ONNX fp32 probabilities differ from torch by {worst:.2e} > {tolerance:.0e}: {results}")
    log.info("parity fp32 ONNX vs torch: max |dp| %s", {k: f"{v:.1e}" for k, v in results.items()})
    return {"max_abs_diff": results, "tolerance": tolerance}


def int8_check(
    y: np.ndarray,
    p_fp32: np.ndarray,
    p_served: np.ndarray,
    labels: Sequence[str],
    thresholds: Sequence[float],
    texts: Sequence[str],
    config: TrainConfig,
) -> dict:
    """Dev macro-F1 of the served model against an fp32 reference (same thresholds), and
    how far each comment's probabilities moved (the largest of its tags): worst, 99th percentile, mean.

    Both must hold: a macro-F1 within `int8_max_f1_drop` can hide many comments whose scores moved
    (one scale per tensor passed it with a drift p99 of 0.30 and lost 0.018 on rednote_dev), so the
    99th percentile of the drift is bounded too (`int8_max_drift_p99`)."""
    before = multilabel_metrics(y, p_fp32, list(labels), list(thresholds))
    after = multilabel_metrics(y, p_served, list(labels), list(thresholds))
    f1_fp32, f1_int8 = before["macro_f1"], after["macro_f1"]
    drift = np.abs(p_served - p_fp32).max(axis=1)
    worst = int(drift.argmax())
    p99 = float(np.quantile(drift, 0.99))
    return {
        "dev_macro_f1_fp32": f1_fp32,
        "dev_macro_f1_int8": f1_int8,
        "max_drop": config.int8_max_f1_drop,
        "max_drift_p99": config.int8_max_drift_p99,
        "passed": f1_fp32 - f1_int8 <= config.int8_max_f1_drop and p99 <= config.int8_max_drift_p99,
        "rows": len(texts),
        "f1_per_tag": {t: [before["tags"][t]["f1"], after["tags"][t]["f1"]] for t in labels},
        "drift_max": round(float(drift.max()), 4),
        "drift_p99": round(p99, 4),
        "drift_mean": round(float(drift.mean()), 5),
        "drift_worst_text": texts[worst][:200],
    }


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


def calibration_feeds(model: Any, tokenizer_path: Path, config: TrainConfig, texts: Sequence[str]) -> list[dict]:
    """One feed per comment, unpadded: as a lone comment is served."""
    tokenizer = load_tokenizer(tokenizer_path, config.max_length)
    names = {i.name for i in model.graph.input}
    feeds = []
    for e in tokenizer.encode_batch([config.text_prefix + t for t in texts]):
        if set(PACKED_INPUTS) <= names:
            feeds.append(packed_feeds([e.ids], [[0]], pad_id_of(tokenizer)))
            continue
        ids = np.array([e.ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        feeds.append(feed)
    return feeds


def prune_vocabulary(model: Any, tokenizer_json: dict, config: TrainConfig, corpus: VocabCorpus | None) -> dict | None:
    """Prune `model`'s embeddings in place; returns the pruned tokenizer.json and the report, or None
    when pruning is off or the corpus is too small to trust (the reason is logged)."""
    if not config.prune_vocab:
        return None
    if corpus is None or len(corpus.fit) < config.vocab_min_corpus:
        size = 0 if corpus is None else len(corpus.fit)
        log.warning(
            "vocabulary kept whole: %d corpus comments < vocab_min_corpus %d (pruning on a small corpus would "
            "drop languages; put the public corpora in place to prune)",
            size,
            config.vocab_min_corpus,
        )
        return None
    started = time.perf_counter()
    words = (
        wordlist_texts(config.vocab_wordlist_languages, config.vocab_wordlist_words)
        if config.vocab_wordlist_words
        else []
    )
    plan = plan_vocabulary(
        tokenizer_json,
        corpus.fit_texts,
        prefix=config.text_prefix,
        min_count=config.vocab_min_count,
        wordlist_texts=words,
    )
    pruned = prune_tokenizer(tokenizer_json, plan.kept)
    rows = prune_embeddings(model, plan.kept)
    report = {
        **plan.describe(),
        "embedding_rows": {"before": rows[0], "after": rows[1]},
        "corpus_files": corpus.files,
        "wordlists": {"words": config.vocab_wordlist_words, "languages": list(config.vocab_wordlist_languages)}
        if words
        else None,
        "holdout_coverage": coverage(tokenizer_json, pruned, plan.kept, corpus.holdout, prefix=config.text_prefix),
        "seed_holdout_coverage": coverage(
            tokenizer_json, pruned, plan.kept, corpus.seed_holdout, prefix=config.text_prefix
        ),
    }
    log.info(
        "vocabulary: kept %d of %d pieces (%d used by %d comments) in %.0fs",
        len(plan.kept),
        plan.full_size,
        plan.used,
        plan.fit_comments,
        time.perf_counter() - started,
    )
    return {"tokenizer": pruned, "report": report}


def build_served(
    fp32_path: Path,
    work_tokenizer: Path,
    out: Path,
    config: TrainConfig,
    meta: dict,
    *,
    dev_rows: Sequence[Row],
    calibration_texts: Sequence[str],
    corpus: VocabCorpus | None,
) -> dict:
    """From the fp32 ONNX model and its tokenizer: prune the vocabulary, quantize, check against fp32.

    Writes out/model.onnx and out/tokenizer.json; returns the metrics to put in bundle.json. The int8
    gate (`int8_check`, against fp32 with the same vocabulary, so that it measures int8 alone; the
    pruned vocabulary's effect on dev is reported beside it, and the served model against the full
    fp32 one): dev macro-F1 within `int8_max_f1_drop` of fp32 and per-comment drift p99 within
    `int8_max_drift_p99`. `int8_per_token_matmuls` of the most sensitive MatMuls (all when
    negative) get per-token activation scales; more (x3) while the gate fails (ExportError if never).
    """
    import onnx

    from training.quantize import (
        embed_4bit,
        fix_row_scales,
        normalize_rows,
        quantize_matmuls,
        sensitivity,
        weight_matmuls,
    )

    out.mkdir(parents=True, exist_ok=True)
    fp32_meta = BundleMeta.model_validate({**meta, "model_file": fp32_path.name})
    fp32 = Predictor(Bundle(work_tokenizer.parent, fp32_meta), model_path=fp32_path)
    model = onnx.load(str(fp32_path))
    tokenizer_json = json.loads(work_tokenizer.read_text(encoding="utf-8"))
    metrics: dict = {}
    pruned = prune_vocabulary(model, tokenizer_json, config, corpus)
    if pruned:
        (out / "tokenizer.json").write_text(json.dumps(pruned["tokenizer"], ensure_ascii=False), encoding="utf-8")
        metrics["vocabulary"] = pruned["report"]
    else:
        shutil.copyfile(work_tokenizer, out / "tokenizer.json")
        metrics["vocabulary"] = {"kept": fp32.tokenizer.get_vocab_size(), "pruned": False}
    served_meta = BundleMeta.model_validate({**meta, "model_file": SERVED_FILE})
    if not config.quantize:
        onnx.save(model, str(out / SERVED_FILE))
        return metrics
    started = time.perf_counter()
    texts = [r.text for r in dev_rows]
    y = np.array([r.label_vector(fp32.labels) for r in dev_rows])
    thresholds = [float(t) for t in fp32.thresholds]
    p_full = fp32.probabilities(texts)
    p_fp32 = p_full
    if pruned:  # the gate measures int8 against fp32 on the same vocabulary; the vocabulary's own effect apart
        onnx.save(model, str(out / PRUNED_FP32_FILE))
        p_fp32 = Predictor(Bundle(out, served_meta), model_path=out / PRUNED_FP32_FILE).probabilities(texts)
        (out / PRUNED_FP32_FILE).unlink()
        metrics["vocabulary"]["dev_fp32"] = int8_check(y, p_full, p_fp32, fp32.labels, thresholds, texts, config)
    if config.int8_per_token_matmuls < 0:  # all of them: no ranking needed
        order, per_token = list(weight_matmuls(model)), len(weight_matmuls(model))
    else:
        order = sensitivity(model, calibration_feeds(model, out / "tokenizer.json", config, calibration_texts))
        per_token = min(config.int8_per_token_matmuls, len(order))
    kept_fp32: list[str] = []  # the most sensitive MatMuls, kept fp32 only when per-token scales everywhere fail
    while True:
        candidate = onnx.ModelProto()
        candidate.CopyFrom(model)
        normalize_rows(candidate, only=[name for name in order[:per_token] if name not in kept_fp32])
        quantize_matmuls(candidate, out / SERVED_FILE, exclude=kept_fp32)
        quantized = onnx.load(str(out / SERVED_FILE))
        fixed_ranges = fix_row_scales(quantized) if config.int8_fixed_ranges else 0
        embedding_error = embed_4bit(quantized)
        onnx.save(quantized, str(out / SERVED_FILE))
        p_served = Predictor(Bundle(out, served_meta)).probabilities(texts)
        check = int8_check(y, p_fp32, p_served, fp32.labels, thresholds, texts, config)
        log.info(
            "int8 with %d/%d MatMuls on per-token scales, %d kept fp32: dev macro-F1 fp32 %.4f, served %.4f "
            "(per tag %s) on %d rows; drift max %.3f p99 %.3f",
            per_token,
            len(order),
            len(kept_fp32),
            check["dev_macro_f1_fp32"],
            check["dev_macro_f1_int8"],
            check["f1_per_tag"],
            check["rows"],
            check["drift_max"],
            check["drift_p99"],
        )
        if check["passed"]:
            break
        if per_token < len(order):
            per_token = min(len(order), max(8, 3 * per_token))
            continue
        if len(kept_fp32) >= config.int8_max_fp32_matmuls:
            break
        if not kept_fp32:
            feeds = calibration_feeds(model, out / "tokenizer.json", config, calibration_texts)
            ranking = sensitivity(model, feeds, per_token=True)
        kept_fp32 = ranking[: min(config.int8_max_fp32_matmuls, max(2, 2 * len(kept_fp32)))]
    if not check["passed"]:
        raise ExportError(
            f"int8 fails the gate even with per-token scales on every MatMul and the "
            f"{len(kept_fp32)} most sensitive kept fp32: dev macro-F1 "
            f"{check['dev_macro_f1_int8']:.4f} vs fp32 {check['dev_macro_f1_fp32']:.4f} (max drop "
            f"{config.int8_max_f1_drop}), per-comment drift p99 {check['drift_p99']} "
            f"(max {config.int8_max_drift_p99}); worst comment: {check['drift_worst_text']!r}. Compare with "
            "prune_vocab=false to see whether the vocabulary or int8 moved it; quantize=false ships fp32"
        )
    metrics["int8"] = {
        **check,
        "reference": "fp32 with the served vocabulary" if pruned else "fp32",
        "against_full_fp32": {
            k: v
            for k, v in int8_check(y, p_full, p_served, fp32.labels, thresholds, texts, config).items()
            if k.startswith(("dev_", "drift_")) and k != "drift_worst_text"
        },
        "matmuls_int8": len(order) - len(kept_fp32),
        "per_token_matmuls": [name for name in order[:per_token] if name not in kept_fp32],
        "fixed_range_inputs": fixed_ranges,  # one int8 range, [-1, 1]: scores independent of the batch
        "fp32_matmuls": kept_fp32,
        "embedding": "q4_0 blocks of 32" if embedding_error is not None else "fp32",
        "embedding_max_abs_error": embedding_error,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return metrics


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
    calibration_texts: Sequence[str] = (),
    corpus: VocabCorpus | None = None,
) -> Bundle:
    """Export fp32 ONNX into the work folder (an artefact of the run), then write the served model,
    tokenizer and bundle.json into `out`; run every check. No model card yet."""
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(work / "tokenizer.json", config.max_length)
    example_ids = [e.ids for e in tokenizer.encode_batch([config.text_prefix + t for t in PARITY_TEXTS])]
    meta = BundleMeta.model_validate(build_meta(name, config, calibration, data_digest, {}, FP32_FILE))
    parity: dict | None = None
    if config.packed and config.pooling == "mean":
        started = time.perf_counter()
        try:
            export_packed_onnx(model, work / FP32_FILE, example_ids, pad_id_of(tokenizer))
            fp32 = Predictor(Bundle(work, meta), model_path=work / FP32_FILE)
            parity = {**parity_check(model, fp32, config.parity_tolerance), "layout": "packed"}
            log.info("exported %s (packed) in %.0fs", work / FP32_FILE, time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - any base model the packed form cannot express
            log.warning("packed export failed for %s (%s); exporting the padded layout", config.base_model, exc)
    if parity is None:
        started = time.perf_counter()
        example = collate(example_ids[:2], np.zeros((2, len(config.labels))), pad_id_of(tokenizer))
        export_onnx(model, work / FP32_FILE, (example.input_ids, example.attention_mask))
        log.info("exported %s in %.0fs", work / FP32_FILE, time.perf_counter() - started)
        fp32 = Predictor(Bundle(work, meta), model_path=work / FP32_FILE)
        parity = {**parity_check(model, fp32, config.parity_tolerance), "layout": "padded"}
    return _served_bundle(
        work / FP32_FILE,
        parity,
        config,
        work,
        out,
        name=name,
        calibration=calibration,
        data_digest=data_digest,
        dev_rows=dev_rows,
        calibration_texts=calibration_texts or [r.text for r in dev_rows[:64]],
        corpus=corpus,
    )


def _served_bundle(
    fp32_path: Path,
    parity: dict | str,
    config: TrainConfig,
    work: Path,
    out: Path,
    *,
    name: str,
    calibration: dict,
    data_digest: str,
    dev_rows: Sequence[Row],
    calibration_texts: Sequence[str],
    corpus: VocabCorpus | None,
) -> Bundle:
    """Quantize the fp32 model into `out`, check it, and write bundle.json (both export paths)."""
    meta = build_meta(name, config, calibration, data_digest, {}, fp32_path.name)
    metrics: dict = {"parity": parity, "dev": calibration["dev"]}
    metrics.update(
        build_served(
            fp32_path,
            work / "tokenizer.json",
            out,
            config,
            meta,
            dev_rows=dev_rows,
            calibration_texts=calibration_texts,
            corpus=corpus,
        )
    )
    validated = write_bundle_meta(out, build_meta(name, config, calibration, data_digest, metrics, SERVED_FILE))
    return Bundle(out, validated)


def reexport_bundle(
    fp32_path: Path,
    config: TrainConfig,
    work: Path,
    out: Path,
    *,
    name: str,
    calibration: dict,
    data_digest: str,
    dev_rows: Sequence[Row],
    calibration_texts: Sequence[str],
    corpus: VocabCorpus | None,
) -> Bundle:
    """The served bundle from an existing fp32 ONNX model of the run in `work` (no torch export)."""
    if not fp32_path.is_file():
        raise ExportError(f"{fp32_path} not found: give the fp32 ONNX file of this run (model.fp32.onnx)")
    out.mkdir(parents=True, exist_ok=True)
    parity = f"re-exported from {fp32_path.name}: parity checked when it was exported"
    return _served_bundle(
        fp32_path,
        parity,
        config,
        work,
        out,
        name=name,
        calibration=calibration,
        data_digest=data_digest,
        dev_rows=dev_rows,
        calibration_texts=calibration_texts,
        corpus=corpus,
    )
