"""The `belong` command: one thin layer above training and serving.

Usage: `belong --help`. One module per command or command group (`*_cmds.py`), shared helpers in
common.py. Training commands import torch lazily, inside the command, so `belong serve` and
`belong score` never load the training stack.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from belonging_cli import (
    consume_cmds,
    db_cmds,
    feedback_cmds,
    integrations_cmds,
    keys_cmds,
    replay_cmds,
    score_cmds,
    serve_cmds,
    spark_cmds,
    train_cmds,
    users_cmds,
    webhooks_cmds,
)

app = typer.Typer(
    help="belonging: how are newcomers received? Train, evaluate and serve the tagger.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _configure(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


app.add_typer(train_cmds.base_app, name="base")
app.command("train")(train_cmds.train)
app.command("prepare")(train_cmds.prepare)
app.command("fit")(train_cmds.fit)
app.command("calibrate")(train_cmds.calibrate)
app.command("export")(train_cmds.export_)
app.command("evaluate")(train_cmds.evaluate)
app.command("splits")(train_cmds.write_splits)
app.command("score")(score_cmds.score)
app.command("serve")(serve_cmds.serve)
app.add_typer(keys_cmds.app, name="keys")
app.add_typer(db_cmds.app, name="db")
app.command("replay")(replay_cmds.replay_command)
app.add_typer(users_cmds.app, name="users")
app.add_typer(feedback_cmds.app, name="feedback")
app.add_typer(integrations_cmds.app, name="integrations")
app.add_typer(webhooks_cmds.app, name="webhooks")
app.command("consume")(consume_cmds.consume)
app.command("spark-score")(spark_cmds.spark_score)

if __name__ == "__main__":
    app()
