"""Scale-out fixtures: the serving ones (PostgreSQL URL, fresh SQLite files)."""

from __future__ import annotations

from tests.serving.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    db_url,
    postgres_url,
    template_db,
)
