"""The training stages, connected by files in a work folder (`runs/NAME/`).

prepare -> prepared.jsonl      load, validate, deduplicate, split
fit     -> best.pt, last.pt    fine-tune (training/train.py)
calibrate -> calibration.json  temperatures and thresholds on dev
export  -> models/NAME/        model.fp32.onnx in WORK; pruned vocabulary + int8 + bundle.json (training/export.py)
card    -> MODEL_CARD.md       evaluation through the served predictor, plots

`run_all` chains them: what `belong train` does.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from training.config import LABELS, TrainConfig
from training.data import (
    DataError,
    Row,
    assign_splits,
    by_split,
    count_table,
    data_digest,
    deduplicate,
    load_rows,
    read_assignment,
    stable_hash,
)
from training.recipe import Recipe, Source
from training.sources import read_source

log = logging.getLogger(__name__)
console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)  # wide tables in logs
DEFAULT_ASSIGNMENT = Path("data/splits.jsonl")


def print_counts(rows: Sequence[Row], title: str) -> None:
    table = Table(title=title)
    for column in ("lang", "split", "rows", *LABELS, "neutral", "partial"):
        table.add_column(column, justify="left" if column in ("lang", "split") else "right")
    counts = count_table(rows)
    for (lang, split), c in sorted(counts.items()):
        table.add_row(lang, split, *(str(c[k]) for k in ("rows", *LABELS, "neutral", "partial")))
    console.print(table)


def prepare(
    data: Recipe | Sequence[Path],
    work: Path,
    config: TrainConfig,
    *,
    strict: bool = False,
    assignment_file: Path | None = DEFAULT_ASSIGNMENT,
) -> list[Row]:
    """Load every source of the recipe (or plain `--data` files), deduplicate, split, cap dev/test.

    Writes WORK/prepared.jsonl (rows with their source and split) and WORK/prepare_report.json
    (files, per-source counts, licences, what was skipped): the model card's data section.
    """
    recipe = data if isinstance(data, Recipe) else Recipe.from_files(list(data))
    for note in recipe.check():
        console.print(f"[yellow]{note}[/yellow]")
    loaded: list[Row] = []
    per_source: dict[str, dict] = {}
    for source in recipe.available():
        rows, skipped = read_source(source, strict=strict)
        loaded.extend(rows)
        per_source[source.name] = {**source.describe(), "loaded": len(rows), "unusable": skipped}
    rows, dropped, conflicts = deduplicate(loaded)
    assignment = read_assignment(assignment_file) if assignment_file else {}
    unsplit = {id(row) for row in rows if row.split is None and row.id not in assignment}
    rows = assign_splits(
        rows,
        assignment=assignment,
        dev_fraction=config.dev_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    no_holdout = {s.name for s in recipe.available() if not s.holdout}
    for row in rows:  # a corpus with its own test set keeps its hash-split test rows for training
        if row.split == "test" and row.source in no_holdout and id(row) in unsplit:
            row.split = "train"
    rows = cap_eval_splits(rows, {s.name: s for s in recipe.available()}, seed=config.seed)
    for name, counts in per_source.items():
        mine = [r for r in rows if r.source == name]
        counts.update({split: sum(r.split == split for r in mine) for split in ("train", "dev", "test")})
    log.info(
        "%d sources, %d rows loaded, %d duplicates dropped (%d with other labels), %d rows kept",
        len(per_source),
        len(loaded),
        dropped,
        conflicts,
        len(rows),
    )
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "prepared.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
    skipped_sources = [s.name for s in recipe.missing()[1]]
    (work / "prepare_report.json").write_text(
        json.dumps(
            {
                "recipe": str(recipe.path) if recipe.path else None,
                "corpora": str(recipe.corpora),
                "sources": per_source,
                "skipped_sources": skipped_sources,
                "files": [str(s.path) for s in recipe.available()],
                "rows": len(rows),
                "duplicates_dropped": dropped,
                "duplicate_label_conflicts": conflicts,
                "calibrate_on": [str(p) for p in recipe.calibrate_on],
                "eval_data": [str(p) for p in recipe.eval_data],
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    print_counts(rows, f"rows per language and split ({len(rows)} after deduplication)")
    print_sources(per_source)
    return rows


def cap_eval_splits(rows: list[Row], sources: dict[str, Source], seed: int) -> list[Row]:
    """Keep at most dev_cap / test_cap rows of each source's dev / test split (a stable sample).

    The rows beyond a cap are dropped, never moved to train: a test row must stay unseen.
    """
    kept = []
    grouped: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        grouped.setdefault((row.source, row.split or "train"), []).append(row)
    for (name, split), members in grouped.items():
        source = sources.get(name)
        cap = {"dev": source.dev_cap, "test": source.test_cap}.get(split, 0) if source else 0
        if cap and len(members) > cap:
            members = sorted(members, key=lambda r: stable_hash(r.id, seed))[:cap]
        kept.extend(members)
    return kept


def print_sources(per_source: dict[str, dict]) -> None:
    table = Table(title="rows per source (train is sampled per epoch where per_epoch is set)")
    for column in ("source", "format", "tags", "licence", "train", "dev", "test", "per_epoch", "unusable"):
        table.add_column(column, justify="left" if column in ("source", "format", "tags", "licence") else "right")
    for name, c in per_source.items():
        table.add_row(
            name,
            c["format"],
            ",".join(c["tags"]),
            c["licence"],
            *(str(c.get(k, 0)) for k in ("train", "dev", "test", "per_epoch", "unusable")),
        )
    console.print(table)


def read_prepared(work: Path) -> dict[str, list[Row]]:
    path = work / "prepared.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare stage first")
    return by_split(load_rows([path], strict=True).rows)


def fit_stage(work: Path, config: TrainConfig, *, resume: bool = False, monitor: Sequence[Path] = ()) -> dict:
    from training.train import fit

    splits = read_prepared(work)
    monitor_rows = load_rows(monitor, strict=True).rows if monitor else []
    sources = read_prepare_report(work).get("sources", {})
    return fit(
        splits["train"],
        splits["dev"],
        config,
        work,
        resume=resume,
        monitor_rows=monitor_rows,
        epoch_caps={name: s.get("per_epoch", 0) for name, s in sources.items()},
        select_sources=[name for name, s in sources.items() if s.get("select")],
    )


def read_prepare_report(work: Path) -> dict:
    path = work / "prepare_report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def calibrate_stage(work: Path, calibration_data: Sequence[Path] = (), *, with_dev: bool = False) -> dict:
    """Fit temperatures and thresholds on the dev split, or on `calibration_data` files when given.

    `with_dev` adds the dev rows of the checkpoint-choosing sources (real comments) next to the
    files. With several sets, each tag's threshold maximises the mean F1 over the sets.
    """
    from serving.engine.predictor import load_tokenizer, pad_id_of
    from training.calibrate import calibrate
    from training.train import load_trained, predict_logits

    model, config = load_trained(work)
    rows: list[Row] = []
    groups: list[str] = []
    for path in calibration_data:
        file_rows = load_rows([path], strict=True).rows
        rows += file_rows
        groups += [path.name] * len(file_rows)
    if with_dev or not calibration_data:
        select = {n for n, s in read_prepare_report(work).get("sources", {}).items() if s.get("select")}
        dev = read_prepared(work)["dev"]
        if calibration_data and select:  # next to the files: only real-comment dev rows
            dev = [r for r in dev if r.source in select]
        rows += dev
        groups += [f"dev: {r.source or 'data'}" for r in dev]
    tokenizer = load_tokenizer(work / "tokenizer.json", config.max_length)
    ids = [list(e.ids) for e in tokenizer.encode_batch([config.text_prefix + r.text for r in rows])]
    logits = predict_logits(model, ids, pad_id_of(tokenizer))
    y = np.array([r.label_vector(config.labels) for r in rows], dtype=np.float32)
    several = len(set(groups)) > 1
    result = calibrate(
        logits, y, config.labels, config.hostile_target_precision, groups=np.array(groups) if several else None
    )
    result["source"] = sorted(set(groups)) if several else [str(p) for p in calibration_data] or ["dev split"]
    (work / "calibration.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info(
        "calibrated on %s: thresholds %s, temperatures %s",
        result["source"],
        result["thresholds"],
        result["temperatures"],
    )
    return result


def vocabulary_corpus(work: Path, rows: Sequence[Row]):
    """The texts whose tokens the served vocabulary keeps: the corpora folder the run was prepared
    with (all but rednote_dev), seeds, challenge sets and the run's rows; never its dev/test rows."""
    from training.vocab import vocab_corpus

    report = read_prepare_report(work)
    corpora = Path(report["corpora"]) if report.get("corpora") else None
    # Only when the run trained on the corpora: a run on plain --data files says nothing about them.
    if corpora and not any(Path(f).resolve().parent == corpora.resolve() for f in report.get("files", [])):
        corpora = None
    return vocab_corpus(corpora, [Path("seeds"), Path("data/challenge")], rows)


def export_stage(work: Path, out: Path, name: str | None = None, from_onnx: Path | None = None):
    """Export the run's best checkpoint (or re-export `from_onnx`, a fp32 ONNX model of this run,
    e.g. an older bundle's `model.fp32.onnx`, with today's export settings) into `out`."""
    import dataclasses

    from training.config import EXPORT_KEYS

    calibration = json.loads((work / "calibration.json").read_text(encoding="utf-8"))
    splits = read_prepared(work)
    all_rows = [row for rows in splits.values() for row in rows]
    if from_onnx is None:
        from training.export import export_bundle
        from training.train import load_trained

        model, config = load_trained(work)
    else:
        saved = TrainConfig.from_dict(json.loads((work / "config.json").read_text(encoding="utf-8")))
        defaults = TrainConfig()
        config = dataclasses.replace(saved, **{k: getattr(defaults, k) for k in EXPORT_KEYS})
    common = dict(
        name=name or out.name,
        calibration=calibration,
        data_digest=data_digest(all_rows),
        dev_rows=int8_check_rows(splits["dev"], config.seed),
        calibration_texts=[r.text for r in int8_check_rows(splits["train"], config.seed, limit=64)],
        corpus=vocabulary_corpus(work, all_rows),
    )
    if from_onnx is None:
        return export_bundle(model, config, work, out, **common)
    from training.export import reexport_bundle

    return reexport_bundle(from_onnx, config, work, out, **common)


def int8_check_rows(dev: list[Row], seed: int, limit: int | None = 4000) -> list[Row]:
    """A stable sample of dev for the int8 gate (the default recipe's dev, ~3,500 rows, whole): on
    1,500 rows a few comments crossing a threshold moved a tag's F1 by 0.01-0.03 either way."""
    return sorted(dev, key=lambda r: stable_hash(r.id, seed))[:limit]


def card_stage(work: Path, out: Path, eval_data: Sequence[Path] = ()) -> dict:
    """Evaluate the exported bundle (served path) on each source's test split, the held-out challenge
    sets and extra sets; write MODEL_CARD.md."""
    from serving.engine.bundle import Bundle, BundleMeta, write_bundle_meta
    from serving.engine.predictor import Predictor
    from training.evaluate import challenge_report, crossfit_report, evaluate_rows, render, render_challenge
    from training.model_card import EvalSet, write_model_card

    meta = BundleMeta.model_validate(json.loads((out / "bundle.json").read_text(encoding="utf-8")))
    predictor = Predictor(Bundle(out, meta))
    splits = read_prepared(work)
    test_by_source: dict[str, list[Row]] = {}
    for row in splits["test"]:
        test_by_source.setdefault(row.source or "data", []).append(row)
    sets = [(f"test split: {name}", rows) for name, rows in test_by_source.items()]
    sets += [(path.name, load_rows([path]).rows) for path in eval_data]
    results, reports = [], {}
    challenge = None
    for title, rows in sets:
        report, probs = evaluate_rows(predictor, rows)
        render(report, title, console)
        y = np.array([r.label_vector(meta.labels) for r in rows])
        if title in {p.name for p in eval_data}:
            report["crossfit"] = crossfit_report(y, probs, meta.labels, [r.id for r in rows])
            console.print(
                f"{title}: cross-fitted (thresholds picked on one half, measured on the other): "
                f"macro-F1 {report['crossfit']['macro_f1']:.3f}, 95% bootstrap interval "
                f"{report['crossfit']['macro_f1_interval']}"
            )
        if any(r.kind and r.source == "challenge" for r in rows):
            challenge = challenge_report(rows, probs, meta.labels, [meta.thresholds[t] for t in meta.labels])
            render_challenge(challenge, console)
        results.append(EvalSet(title, report, y, probs))
        reports[title] = report
    metrics = {
        **meta.metrics,
        "evaluation": {
            k: {**v["overall"], **({"crossfit": v["crossfit"]} if "crossfit" in v else {})} for k, v in reports.items()
        },
    }
    if challenge:
        metrics["challenge"] = challenge["summary"]
    meta = write_bundle_meta(out, {**meta.model_dump(mode="json"), "metrics": metrics})
    write_model_card(out, meta, results, read_prepare_report(work), challenge)
    return reports


def publish(work: Path, out: Path, eval_data: Sequence[Path] = (), from_onnx: Path | None = None) -> dict:
    """Export and evaluate into a temporary folder beside `out`, then rename it into place.

    A failed or interrupted build never leaves a half bundle that `belong serve` would refuse: `out`
    is either the previous complete bundle or the new complete one.
    """
    import shutil

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    export_stage(work, partial, name=out.name, from_onnx=from_onnx)
    reports = card_stage(work, partial, eval_data)
    if out.exists():
        retired = out.parent / f".{out.name}.old"
        shutil.rmtree(retired, ignore_errors=True)
        out.rename(retired)
        partial.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        partial.rename(out)
    return reports


def check_base_model(base_model: str) -> None:
    """Fail in seconds when the base model is neither a local checkpoint nor loadable by id."""
    if Path(base_model, "config.json").is_file():
        return
    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(base_model)
    except Exception as exc:  # noqa: BLE001 - any failure here means the same thing to the user
        hint = " (run `belong base import` to build the default one)" if "models/base" in base_model else ""
        raise DataError(f"base model {base_model!r} not found: no local config.json and no hub copy{hint}") from exc


def run_all(
    data: Recipe | Sequence[Path],
    out: Path,
    config: TrainConfig,
    *,
    work: Path | None = None,
    strict: bool = False,
    resume: bool = False,
    assignment_file: Path | None = DEFAULT_ASSIGNMENT,
    calibration_data: Sequence[Path] = (),
    eval_data: Sequence[Path] = (),
    monitor: Sequence[Path] = (),
) -> dict:
    """Every stage, after checking every input first: a missing file fails in seconds, not after training."""
    recipe = data if isinstance(data, Recipe) else Recipe.from_files(list(data))
    missing = [str(p) for p in [*calibration_data, *eval_data, *monitor] if not p.exists()]
    if missing:
        raise DataError("no such file or folder: " + ", ".join(missing))
    for note in recipe.check():  # optional inputs of the recipe: skipped with one note each
        console.print(f"[yellow]{note}[/yellow]")
    recipe.calibrate_on += list(calibration_data)
    recipe.eval_data += list(eval_data)
    check_base_model(config.base_model)
    work = work or Path("runs") / out.name
    prepare(recipe, work, config, strict=strict, assignment_file=assignment_file)
    history = fit_stage(work, config, resume=resume, monitor=monitor)
    calibrate_stage(work, recipe.calibrate_on, with_dev=recipe.calibrate_with_dev)
    reports = publish(work, out, recipe.eval_data)
    return {"history": history, "reports": reports}
