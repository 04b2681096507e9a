"""Fine-tune the tagger: multi-label BCE, dev evaluation each epoch, early stopping, resumable.

Usage (the `fit` stage alone): `belong fit --prepared runs/NAME/prepared.jsonl --work runs/NAME`.
Writes into the work folder: `tokenizer.json`, `config.json`, `last.pt` (resume point) and
`best.pt` (best dev macro-F1), plus `history.json`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from serving.engine.predictor import load_tokenizer, pad_id_of
from training.config import TrainConfig
from training.data import Row
from training.ema import WeightAverage
from training.metrics import best_f1_threshold, multilabel_metrics
from training.model import Tagger, build_tagger, load_model_state, save_base_tokenizer, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(config: TrainConfig) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bfloat16 for the forward pass when `mixed_precision` asks for it or ("auto") the device has
    native bf16 arithmetic; None: fp32."""
    mode = config.mixed_precision  # checked with the rest of the config, before training starts
    if mode == "off":
        return None
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if mode == "bf16" or native:
        return torch.bfloat16
    return None


def encode_rows(tokenizer, rows: Sequence[Row], config: TrainConfig) -> list[list[int]]:
    encodings = tokenizer.encode_batch([config.text_prefix + row.text for row in rows])
    return [list(e.ids) for e in encodings]


def collate(ids: Sequence[list[int]], labels: np.ndarray, pad_id: int) -> Batch:
    """Dynamic padding: each batch is only as wide as its longest row."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        mask[row, : len(x)] = 1
    return Batch(input_ids, mask, torch.tensor(labels, dtype=torch.float32))


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffle, then sort within windows of 50 batches: random batches with little padding."""
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return [list(map(int, b)) for b in batches]


@torch.no_grad()
def predict_logits(
    model: Tagger, ids: Sequence[list[int]], pad_id: int, device: torch.device | None = None, batch_size: int = 64
) -> np.ndarray:
    device = device or torch.device("cpu")
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), model.head.out_features), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([ids[i] for i in chunk], np.zeros((len(chunk), out.shape[1])), pad_id)
        logits = model(batch.input_ids.to(device), batch.attention_mask.to(device))
        out[chunk] = logits.float().cpu().numpy()
    return out


def dev_score(logits: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict:
    """Dev macro-F1 with each tag at its best threshold: the operating point calibration will pick."""
    probs = 1 / (1 + np.exp(-logits))
    thresholds = [best_f1_threshold(y[:, i], probs[:, i]) for i in range(len(labels))]
    return multilabel_metrics(y, probs, labels, thresholds)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None) -> torch.Tensor:
    """BCE over the known labels only: an unknown tag (target < 0) adds no loss and no gradient.

    Filling unknown tags with 0 would teach "a Davidson tweet is never welcoming"; the mask keeps a
    source that labels one tag silent about the others.
    """
    known = targets >= 0
    per_label = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets.clamp(min=0), pos_weight=pos_weight, reduction="none"
    )
    return (per_label * known).sum() / known.sum().clamp(min=1)


def pos_weights(y: np.ndarray, cap: float) -> torch.Tensor:
    """negatives / positives per tag over the rows that label it, clipped to [1, cap]."""
    positives = (y == 1).sum(axis=0)
    negatives = (y == 0).sum(axis=0)
    return torch.tensor(np.clip(negatives / np.maximum(positives, 1), 1.0, cap), dtype=torch.float32)


def pr_aucs(logits: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """PR-AUC per tag over the rows that label it, where both classes occur."""
    from sklearn.metrics import average_precision_score

    out = {}
    for i, label in enumerate(labels):
        known = y[:, i] >= 0
        if 0 < y[known, i].sum() < known.sum():
            out[label] = round(float(average_precision_score(y[known, i], logits[known, i])), 4)
    return out


def monitor_score(logits: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict:
    """Threshold-free view of an external set: PR-AUC per tag and their mean."""
    pr_auc = pr_aucs(logits, y, labels)
    return {"pr_auc": pr_auc, "mean_pr_auc": round(float(np.mean(list(pr_auc.values()))), 4) if pr_auc else None}


def per_source_scores(logits: np.ndarray, y: np.ndarray, sources: Sequence[str], labels: Sequence[str]) -> dict:
    """Dev PR-AUC and best-threshold F1 per source and tag (each source on the tags it labels)."""
    names = np.array(sources)
    out = {}
    for name in sorted(set(sources)):
        members = names == name
        report = dev_score(logits[members], y[members], labels)
        out[name] = {
            "n": int(members.sum()),
            "pr_auc": pr_aucs(logits[members], y[members], labels),
            "f1": {t: m["f1"] for t, m in report["tags"].items() if m["support"]},
        }
    return out


def selection_score(
    by_source: dict,
    select: Sequence[str],
    labels: Sequence[str],
    dev_positives: dict[str, dict[str, int]] | None = None,
    min_positives: int = 10,
) -> float | None:
    """Mean dev PR-AUC over the (selecting source, tag) pairs with at least `min_positives` positives.

    Threshold-free, so the checkpoint is chosen for ranking real comments, not for one operating
    point; each pair weighs the same, and pairs with a handful of positives (too noisy to decide
    between epochs) are left out.
    """

    def pairs(floor: int) -> list[float]:
        return [
            by_source[name]["pr_auc"][label]
            for name in select
            for label in labels
            if name in by_source
            and label in by_source[name]["pr_auc"]
            and (dev_positives is None or dev_positives.get(name, {}).get(label, 0) >= floor)
        ]

    values = pairs(min_positives) or pairs(1)  # tiny dev sets: every pair rather than none
    return round(float(np.mean(values)), 4) if values else None


def sample_epoch(sources: Sequence[str], caps: dict[str, int], rng: np.random.Generator) -> np.ndarray:
    """Row indices for one epoch: a source with a per-epoch count contributes a fresh random sample
    of that size; a count above its size gives every row once plus a random sample of repeats
    (oversampling a small, valuable source); 0 means every row once."""
    names = np.array(sources)
    chosen = []
    for name in sorted(set(sources)):
        members = np.nonzero(names == name)[0]
        count = caps.get(name, 0)
        if 0 < count < len(members):
            chosen.append(rng.choice(members, size=count, replace=False))
        else:
            chosen.append(members)
            for _ in range(max(count - len(members), 0) // len(members)):
                chosen.append(members)
            if count > len(members) and (count - len(members)) % len(members):
                chosen.append(rng.choice(members, size=(count - len(members)) % len(members), replace=False))
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=int)


def fit(
    train_rows: Sequence[Row],
    dev_rows: Sequence[Row],
    config: TrainConfig,
    work: Path,
    *,
    resume: bool = False,
    monitor_rows: Sequence[Row] = (),
    epoch_caps: dict[str, int] | None = None,
    select_sources: Sequence[str] = (),
) -> dict:
    """Train and keep the best checkpoint. Returns the training history.

    The checkpoint is chosen by `selection_score` on the dev rows of `select_sources` (real comments)
    when any are given, else by dev macro-F1. `epoch_caps` samples that many train rows per epoch from
    a source (large corpora). `monitor_rows` (e.g. real comments) are scored each epoch for the history
    only: they never choose the checkpoint, so their figures stay an honest view of generalisation.
    """
    if not train_rows or not dev_rows:
        raise ValueError(f"need train and dev rows, got {len(train_rows)} train and {len(dev_rows)} dev")
    work.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config)
    config.save(work / "config.json")
    tokenizer_path = save_base_tokenizer(config.base_model, work / "tokenizer.json")
    tokenizer = load_tokenizer(tokenizer_path, config.max_length)
    pad_id = pad_id_of(tokenizer)

    labels = list(config.labels)
    train_ids, dev_ids = encode_rows(tokenizer, train_rows, config), encode_rows(tokenizer, dev_rows, config)
    y_train = np.array([r.label_vector(labels) for r in train_rows], dtype=np.float32)
    y_dev = np.array([r.label_vector(labels) for r in dev_rows], dtype=np.float32)
    monitor_ids = encode_rows(tokenizer, monitor_rows, config) if monitor_rows else []
    y_monitor = np.array([r.label_vector(labels) for r in monitor_rows], dtype=np.float32)

    model = build_tagger(config).to(device)
    head_params = list(model.head.parameters())
    encoder_params = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": encoder_params, "lr": config.learning_rate},
            {"params": head_params, "lr": config.head_learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    epoch_caps = epoch_caps or {}
    train_sources = [r.source for r in train_rows]
    dev_sources = [r.source for r in dev_rows]
    select_sources = [name for name in select_sources if name in set(dev_sources)]
    dev_positives = {
        name: {label: int(sum(r.labels.get(label) == 1 for r in dev_rows if r.source == name)) for label in labels}
        for name in select_sources
    }
    epoch_size = len(sample_epoch(train_sources, epoch_caps, np.random.default_rng(0)))
    steps_per_epoch = -(-epoch_size // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    warmup = int(total_steps * config.warmup_ratio)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        return max(0.0, (total_steps - step) / max(total_steps - warmup, 1))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    average = WeightAverage(model, config.ema_decay) if config.ema_decay else None
    amp = autocast_dtype(config, device)  # training steps only: evaluation stays fp32, like the export
    log.info("training precision: %s", "bfloat16 autocast" if amp else "fp32")
    pos_weight = pos_weights(y_train, config.max_pos_weight).to(device) if config.class_weights else None

    # best_score: the selection score of the best checkpoint so far.
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_score": -1.0, "stale": 0, "history": []}
    if resume and (work / "last.pt").is_file():
        checkpoint = load_model_state(work / "last.pt", model)
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state = checkpoint["state"]
        if average is not None and "ema" in checkpoint:
            average.load_state_dict(checkpoint["ema"])
        torch.set_rng_state(checkpoint["torch_rng"])
        log.info("resumed from %s at epoch %d, step %d", work / "last.pt", state["epoch"], state["step"])

    lengths = [len(x) for x in train_ids]
    while state["epoch"] < config.epochs and not (config.max_steps and state["step"] >= config.max_steps):
        epoch = state["epoch"]
        model.train()
        rng = np.random.default_rng(config.seed + epoch)  # the epoch's order is reproducible on resume
        epoch_rows = sample_epoch(train_sources, epoch_caps, rng)
        batches = [
            [int(epoch_rows[i]) for i in batch]
            for batch in length_grouped_batches([lengths[i] for i in epoch_rows], config.batch_size, rng)
        ]
        started, seen, running = time.perf_counter(), 0, 0.0
        bar = tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            unit="batch",
            leave=False,
            disable=os.environ.get("BELONG_NO_PROGRESS") == "1",
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
        )  # keep logs short when piped
        for batch_index in bar:
            batch = collate([train_ids[i] for i in batch_index], y_train[batch_index], pad_id)
            with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                logits = model(batch.input_ids.to(device), batch.attention_mask.to(device))
            loss = masked_bce(logits.float(), batch.labels.to(device), pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update()
            state["step"] += 1
            seen += len(batch_index)
            running = 0.9 * running + 0.1 * loss.item() if running else loss.item()
            bar.set_postfix(loss=f"{running:.4f}", ex_s=f"{seen / (time.perf_counter() - started):.1f}")
            if config.max_steps and state["step"] >= config.max_steps:
                break
        elapsed = time.perf_counter() - started
        if average is not None:
            average.swap()  # evaluate, choose and keep the averaged weights
        dev_logits = predict_logits(model, dev_ids, pad_id, device)
        report = dev_score(dev_logits, y_dev, labels)
        by_source = per_source_scores(dev_logits, y_dev, dev_sources, labels)
        entry = {
            "epoch": epoch + 1,
            "step": state["step"],
            "loss": round(running, 4),
            "examples_per_s": round(seen / elapsed, 2),
            "dev_macro_f1": report["macro_f1"],
            "dev_f1": {label: report["tags"][label]["f1"] for label in labels},  # None: no positives
            "dev_by_source": by_source,
        }
        score = selection_score(by_source, select_sources, labels, dev_positives) if select_sources else None
        entry["selection"] = (
            {"metric": "mean PR-AUC of " + ",".join(select_sources), "value": score}
            if score is not None
            else {"metric": "dev macro-F1", "value": report["macro_f1"]}
        )
        score = entry["selection"]["value"]
        if monitor_ids:
            entry["monitor"] = monitor_score(predict_logits(model, monitor_ids, pad_id, device), y_monitor, labels)
        state["history"].append(entry)
        log.info(
            "epoch %d: loss %.4f, %.1f ex/s, dev macro-F1 %.4f %s, %s %.4f%s",
            epoch + 1,
            running,
            entry["examples_per_s"],
            report["macro_f1"],
            entry["dev_f1"],
            entry["selection"]["metric"],
            score,
            f", monitor {entry['monitor']}" if monitor_ids else "",
        )
        for name, figures in by_source.items():
            log.info("  dev %-12s n=%-5d PR-AUC %s F1 %s", name, figures["n"], figures["pr_auc"], figures["f1"])
        state["epoch"] = epoch + 1
        if score > state["best_score"]:
            state["best_score"], state["stale"] = score, 0
            save_checkpoint(work / "best.pt", model, epoch=epoch + 1, dev=report)
        else:
            state["stale"] += 1
        if average is not None:
            average.swap()  # the trained weights back: training (or a resume) goes on from them
        save_checkpoint(
            work / "last.pt",
            model,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            state=state,
            torch_rng=torch.get_rng_state(),
            **({"ema": average.state_dict()} if average is not None else {}),
        )
        if state["stale"] > config.early_stopping_patience:
            log.info(
                "early stopping: %s has not improved for %d epoch(s)", entry["selection"]["metric"], state["stale"]
            )
            break
    (work / "history.json").write_text(json.dumps(state["history"], indent=2) + "\n", encoding="utf-8")
    return {"history": state["history"], "best_selection_score": state["best_score"]}


def load_trained(work: Path) -> tuple[Tagger, TrainConfig]:
    """The best checkpoint of a finished `fit`, on CPU, in eval mode."""
    config = TrainConfig.from_dict(json.loads((work / "config.json").read_text(encoding="utf-8")))
    model = build_tagger(config)
    load_model_state(work / "best.pt", model)
    model.eval()
    return model, config
