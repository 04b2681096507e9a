"""The training stages, connected by files in a work folder (`runs/NAME/`).

prepare -> prepared.jsonl      load, validate, deduplicate, split
fit     -> best.pt, last.pt    fine-tune (training/train.py)
calibrate -> calibration.json  temperatures and thresholds on dev
export  -> models/NAME/        ONNX + int8 + bundle.json (training/export.py)
card    -> MODEL_CARD.md       evaluation through the served predictor, plots

`run_all` chains them: what `belong train` does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from training.config import TrainConfig
from training.data import (
    LoadReport,
    Row,
    assign_splits,
    by_split,
    count_table,
    data_digest,
    deduplicate,
    load_rows,
    read_assignment,
)

log = logging.getLogger(__name__)
console = Console(stderr=True)
DEFAULT_ASSIGNMENT = Path("data/splits.jsonl")


def print_counts(rows: Sequence[Row], title: str) -> None:
    table = Table(title=title)
    for column in ("lang", "split", "rows", "welcoming", "curious", "hostile", "neutral"):
        table.add_column(column, justify="left" if column in ("lang", "split") else "right")
    counts = count_table(rows)
    for (lang, split), c in sorted(counts.items()):
        table.add_row(lang, split, *(str(c[k]) for k in ("rows", "welcoming", "curious", "hostile", "neutral")))
    console.print(table)


def prepare(data: Sequence[Path], work: Path, config: TrainConfig, *, strict: bool = False,
            assignment_file: Path | None = DEFAULT_ASSIGNMENT) -> list[Row]:
    report: LoadReport = load_rows(data, strict=strict)
    rows, dropped, conflicts = deduplicate(report.rows)
    assignment = read_assignment(assignment_file) if assignment_file else {}
    rows = assign_splits(rows, assignment=assignment, dev_fraction=config.dev_fraction,
                         test_fraction=config.test_fraction, seed=config.seed)
    log.info("%d files, %d rows loaded, %d bad rows skipped, %d duplicates dropped (%d with other labels)",
             len(report.files), len(report.rows), report.skipped, dropped, conflicts)
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "prepared.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
    (work / "prepare_report.json").write_text(json.dumps({
        "files": [str(f) for f in report.files], "rows": len(rows), "skipped": report.skipped,
        "errors": report.errors[:1000], "duplicates_dropped": dropped, "duplicate_label_conflicts": conflicts,
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_counts(rows, f"rows per language and split ({len(rows)} after deduplication)")
    return rows


def read_prepared(work: Path) -> dict[str, list[Row]]:
    path = work / "prepared.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the prepare stage first")
    return by_split(load_rows([path], strict=True).rows)


def fit_stage(work: Path, config: TrainConfig, *, resume: bool = False, monitor: Sequence[Path] = ()) -> dict:
    from training.train import fit

    splits = read_prepared(work)
    monitor_rows = load_rows(monitor, strict=True).rows if monitor else []
    return fit(splits["train"], splits["dev"], config, work, resume=resume, monitor_rows=monitor_rows)


def calibrate_stage(work: Path, calibration_data: Sequence[Path] = ()) -> dict:
    """Fit temperatures/thresholds on the dev split (or on `calibration_data` files when given)."""
    from serving.engine.predictor import load_tokenizer, pad_id_of
    from training.calibrate import calibrate
    from training.train import load_trained, predict_logits

    model, config = load_trained(work)
    rows = load_rows(calibration_data, strict=True).rows if calibration_data else read_prepared(work)["dev"]
    tokenizer = load_tokenizer(work / "tokenizer.json", config.max_length)
    ids = [list(e.ids) for e in tokenizer.encode_batch([config.text_prefix + r.text for r in rows])]
    logits = predict_logits(model, ids, pad_id_of(tokenizer))
    y = np.array([r.label_vector(config.labels) for r in rows], dtype=np.float32)
    result = calibrate(logits, y, config.labels, config.hostile_target_precision)
    result["source"] = [str(p) for p in calibration_data] or ["dev split"]
    (work / "calibration.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info("calibrated on %s: thresholds %s, temperatures %s", result["source"], result["thresholds"],
             result["temperatures"])
    return result


def export_stage(work: Path, out: Path, name: str | None = None):
    from training.export import export_bundle
    from training.train import load_trained

    model, config = load_trained(work)
    calibration = json.loads((work / "calibration.json").read_text(encoding="utf-8"))
    splits = read_prepared(work)
    all_rows = [row for rows in splits.values() for row in rows]
    return export_bundle(model, config, work, out, name=name or out.name, calibration=calibration,
                         data_digest=data_digest(all_rows), dev_rows=splits["dev"])


def card_stage(work: Path, out: Path, eval_data: Sequence[Path] = ()) -> dict:
    """Evaluate the exported bundle (served path) on test and extra sets; write MODEL_CARD.md."""
    from serving.engine.bundle import Bundle, BundleMeta, write_bundle_meta
    from serving.engine.predictor import Predictor
    from training.evaluate import evaluate_rows, render
    from training.model_card import EvalSet, write_model_card

    meta = BundleMeta.model_validate(json.loads((out / "bundle.json").read_text(encoding="utf-8")))
    predictor = Predictor(Bundle(out, meta))
    splits = read_prepared(work)
    sets = [("seed dev split", splits["dev"]), ("seed test split", splits["test"])]
    sets += [(path.name, load_rows([path]).rows) for path in eval_data]
    results, reports = [], {}
    for title, rows in sets:
        if not rows:
            continue
        report, probs = evaluate_rows(predictor, rows)
        render(report, title, console)
        y = np.array([r.label_vector(meta.labels) for r in rows])
        results.append(EvalSet(title, report, y, probs))
        reports[title] = report
    metrics = {**meta.metrics, "evaluation": {k: v["overall"] for k, v in reports.items()}}
    meta = write_bundle_meta(out, {**meta.model_dump(mode="json"), "metrics": metrics})
    write_model_card(out, meta, results, {k: len(v) for k, v in splits.items()})
    return reports


def run_all(data: Sequence[Path], out: Path, config: TrainConfig, *, work: Path | None = None,
            strict: bool = False, resume: bool = False, assignment_file: Path | None = DEFAULT_ASSIGNMENT,
            calibration_data: Sequence[Path] = (), eval_data: Sequence[Path] = (),
            monitor: Sequence[Path] = ()) -> dict:
    work = work or Path("runs") / out.name
    prepare(data, work, config, strict=strict, assignment_file=assignment_file)
    history = fit_stage(work, config, resume=resume, monitor=monitor)
    calibrate_stage(work, calibration_data)
    export_stage(work, out)
    reports = card_stage(work, out, eval_data)
    return {"history": history, "reports": reports}
