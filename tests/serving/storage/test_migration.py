"""Revision 0002 (moderation tables) upgrades, downgrades and matches the ORM models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

import serving.storage.moderation  # noqa: F401  (registers the tables on Base)
from serving.storage import integrations, perspective, webhooks  # noqa: F401  (issue 10's tables)
from serving.storage.db import alembic_config, current_revision, head_revision, make_engine, upgrade
from serving.storage.models import Base

MODERATION_REVISION = "0002"
TABLES = {"moderators", "moderator_sessions", "login_attempts", "comment_labels", "audit_log"}


def test_upgrade_downgrade_upgrade(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        triggers = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars().all()
    assert {"audit_log_no_update", "audit_log_no_delete"} <= set(triggers)
    config = alembic_config(engine)
    before_moderation = ScriptDirectory.from_config(config).get_revision(MODERATION_REVISION).down_revision
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, before_moderation)
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()
