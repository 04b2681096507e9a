"""CLI fixtures: the serving ones (fresh migrated SQLite per test, API keys, settings)."""

from __future__ import annotations

from tests.serving.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    db_url,
    keys,
    settings,
    template_db,
)
