"""`belong integrations coral`: Coral signing secrets and moderation policy.

Usage:
    belong integrations coral add NAME [--withhold] [--threshold 0.8] [--community ID] [--flag-staff]
        # prompts for the signing secret Coral shows (or reads it from stdin with --secret-stdin)
    belong integrations coral list
    belong integrations coral revoke NAME [--secret ID]

Secrets are stored encrypted (Fernet, key in BELONG_SECRETS_KEY or var/secrets.key), not hashed:
checking Coral's HMAC needs the secret itself. To rotate: rotate in Coral, `add` the new secret
under the same name, and `revoke --secret OLD_ID` once Coral's old secret has expired.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from belonging_cli.common import DatabaseUrl, err, fail, load_settings, store

if TYPE_CHECKING:
    from serving.storage.secrets import SecretBox

app = typer.Typer(help="Integrations with comment platforms.", no_args_is_help=True)
coral_app = typer.Typer(help="Coral's external moderation phase (POST /v1/integrations/coral).", no_args_is_help=True)
app.add_typer(coral_app, name="coral")


def _box() -> SecretBox:
    from serving.storage.secrets import SecretsKeyError, load_secret_box

    try:
        return load_secret_box()
    except SecretsKeyError as exc:
        raise fail(str(exc), 1) from exc


@coral_app.command("add")
def coral_add(
    name: Annotated[str, typer.Argument(help="A name for this Coral installation or phase.")],
    secret_stdin: Annotated[bool, typer.Option("--secret-stdin", help="Read the secret from stdin.")] = False,
    withhold: Annotated[
        bool | None, typer.Option("--withhold/--no-withhold", help="Also answer status SYSTEM_WITHHELD.")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Flag at this hostile probability (default: the bundle's).")
    ] = None,
    community: Annotated[
        str | None, typer.Option("--community", help="Store comments here (default: coral:<site id>; '' resets).")
    ] = None,
    flag_staff: Annotated[
        bool | None, typer.Option("--flag-staff/--no-flag-staff", help="Flag STAFF/MODERATOR/ADMIN authors too.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add Coral's signing secret under NAME (creating the integration); policy options update it."""
    from serving.storage.integrations import add_coral_secret

    secret = sys.stdin.readline().strip() if secret_stdin else typer.prompt("Coral signing secret", hide_input=True)
    box = _box()
    try:
        with store(load_settings(database_url=database_url)) as sessions, sessions.begin() as session:
            row, stored = add_coral_secret(
                session,
                box,
                name=name,
                secret=secret,
                community_id=community,
                hostile_threshold=threshold,
                withhold=withhold,
                flag_staff=flag_staff,
            )
            summary = (row.name, stored.id, stored.fingerprint, row.withhold)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    err.print(
        f"Coral integration {summary[0]!r}: secret {summary[1]} (fingerprint {summary[2]}) active; "
        f"withhold={'yes' if summary[3] else 'no'}. Callback URL: https://YOUR-HOST/v1/integrations/coral"
    )


@coral_app.command("list")
def coral_list(database_url: DatabaseUrl = None) -> None:
    """Integrations, their policy and their secrets (fingerprints only)."""
    from serving.storage.integrations import list_coral

    table = Table(
        "name", "community", "threshold", "withhold", "flag staff", "secret", "fingerprint", "added", "revoked"
    )
    with store(load_settings(database_url=database_url)) as sessions, sessions() as session:
        for row, secrets in list_coral(session):
            for i, s in enumerate(secrets or [None]):
                table.add_row(
                    row.name if i == 0 else "",
                    (row.community_id or "coral:<site id>") if i == 0 else "",
                    (f"{row.hostile_threshold:g}" if row.hostile_threshold is not None else "bundle") if i == 0 else "",
                    ("yes" if row.withhold else "no") if i == 0 else "",
                    ("yes" if row.flag_staff else "no") if i == 0 else "",
                    str(s.id) if s else "",
                    s.fingerprint if s else "",
                    f"{s.created_at:%Y-%m-%d %H:%M}" if s else "",
                    f"{s.revoked_at:%Y-%m-%d %H:%M}" if s and s.revoked_at else "",
                )
    Console().print(table)


@coral_app.command("revoke")
def coral_revoke(
    name: Annotated[str, typer.Argument(help="The integration's name.")],
    secret: Annotated[int | None, typer.Option("--secret", help="Only this secret id (default: all).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke secrets: requests signed only with them get 401 (running servers notice within
    BELONG_KEY_CACHE_SECONDS)."""
    from serving.storage.integrations import revoke_coral

    try:
        with store(load_settings(database_url=database_url)) as sessions, sessions.begin() as session:
            n = revoke_coral(session, name, secret)
    except LookupError as exc:
        raise fail(str(exc).strip("'\""), 1) from exc
    err.print(f"revoked {n} secret(s) of {name!r}")
