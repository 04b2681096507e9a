"""The store: SQLAlchemy 2 models, Alembic-migrated schema, repositories (SQLite or PostgreSQL)."""

import logging

# Alembic narrates every plugin and context at INFO (some on import, hence here, before any
# alembic import); serving.storage.db logs the migrations it runs itself.
if logging.getLogger("alembic").level == logging.NOTSET:
    logging.getLogger("alembic").setLevel(logging.WARNING)
