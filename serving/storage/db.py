"""Engines, sessions and migrations.

Usage:
    engine = make_engine("sqlite:///var/belonging.db")
    upgrade(engine)                      # alembic upgrade head
    Session = make_sessionmaker(engine)

SQLite runs in WAL mode (readers never block the writer) with a busy timeout, so the worker
threads that write scores and the request threads that read them can share one file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


class DatabaseNotMigrated(RuntimeError):
    """The database schema is not at the revision this code expects."""


class StoreUnavailable(RuntimeError):
    """The store cannot take writes right now (locked, read-only, full or unreachable); retry later.

    Raised instead of the driver's error so callers can answer "try again" without knowing SQL.
    """

    def __init__(self, message: str, retry_after: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


DEFAULT_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, **kwargs: Any) -> Engine:
    """Create an engine; for a SQLite file, create its folder and set WAL and a busy timeout.

    `busy_timeout_ms`: how long a SQLite statement waits for another writer's lock before failing
    with "database is locked" (the server uses a short one so a stuck lock becomes a quick 503).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        return create_engine(url, **kwargs)
    database = parsed.database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared between threads: give a file path")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", busy_timeout_ms / 1000)
    engine = create_engine(url, connect_args=connect_args, pool_size=20, max_overflow=20, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable except on power loss
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def all_metadata() -> MetaData:
    """The metadata of every table: the scoring tables (`models`) and the moderation ones (`moderation`)."""
    from serving.storage import (  # noqa: F401  (each module registers its tables on Base)
        integrations,
        moderation,
        perspective,
        ratelimits,
        webhooks,
    )
    from serving.storage.models import Base

    return Base.metadata


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    if engine is not None:
        # Render the URL with its password so alembic can connect on its own if it needs to.
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "serving/storage/migrations has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run `alembic upgrade` on this engine's database."""
    config = alembic_config(engine)
    before = current_revision(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    after = current_revision(engine)
    if after != before:
        log.info(
            "database %s migrated from %s to %s",
            engine.url.render_as_string(hide_password=True),
            before or "empty",
            after,
        )


def check_at_head(engine: Engine) -> None:
    """Raise DatabaseNotMigrated unless the database is at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseNotMigrated(
            f"database {engine.url.render_as_string(hide_password=True)} is at revision {current or 'none'}, "
            f"expected {head}: run `belong db upgrade --database-url URL` (or set BELONG_AUTO_MIGRATE=true)"
        )


def open_at_head(url: str, migrate: bool) -> Engine:
    """An engine on a database at the newest revision: migrated on the spot when `migrate`
    (the SQLite default), otherwise checked (raises DatabaseNotMigrated)."""
    engine = make_engine(url)
    try:
        if migrate:
            upgrade(engine)
        else:
            check_at_head(engine)
    except Exception:
        engine.dispose()
        raise
    return engine
