"""Reliability tests reuse the serving fixtures (fresh migrated SQLite per test, fake predictor, keys)."""

from __future__ import annotations

from tests.serving.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    db_url,
    keys,
    make_client,
    predictor,
    settings,
    template_db,
)
