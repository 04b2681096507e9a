"""Per-key rate limits.

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-20

A key without a row in `key_limits` gets the server's defaults (BELONG_RATE_LIMIT_*).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_limits",
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("requests_per_second", sa.Integer(), nullable=True),
        sa.Column("comments_per_second", sa.Integer(), nullable=True),
        sa.CheckConstraint("requests_per_second IS NULL OR requests_per_second > 0", name="ck_key_limits_requests"),
        sa.CheckConstraint("comments_per_second IS NULL OR comments_per_second > 0", name="ck_key_limits_comments"),
    )


def downgrade() -> None:
    op.drop_table("key_limits")
