"""The `belong` command: one thin layer above training and serving.

Usage: `belong --help`. Training commands import torch lazily, inside the command, so
`belong serve` and `belong score` never load the training stack.
"""

from __future__ import annotations

import logging

import typer

from belonging_cli import moderation_cmds, score_cmds, serve_cmds, train_cmds

app = typer.Typer(help="belonging: how are newcomers received? Train, evaluate and serve the tagger.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


train_cmds.register(app)
score_cmds.register(app)
serve_cmds.register(app)
moderation_cmds.register(app)

if __name__ == "__main__":
    app()
