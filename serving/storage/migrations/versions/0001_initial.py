"""Initial schema: API keys, scored comments, threads with counters and a review status.

Revision ID: 0001
Revises:
Create Date: 2025-02-01

The threads table carries `status` (open/resolved/dismissed) so the moderator pages can add
users, sessions and an audit log in a later revision without touching these tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("community_id", sa.String(200), nullable=False),
        sa.Column("comment_id", sa.String(200), nullable=False),
        sa.Column("thread_id", sa.String(200), nullable=True),
        sa.Column("author_id", sa.String(200), nullable=True),
        sa.Column("parent_id", sa.String(200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("lang", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("p_welcoming", sa.Float(), nullable=False),
        sa.Column("p_curious", sa.Float(), nullable=False),
        sa.Column("p_hostile", sa.Float(), nullable=False),
        sa.Column("welcoming", sa.Boolean(), nullable=False),
        sa.Column("curious", sa.Boolean(), nullable=False),
        sa.Column("hostile", sa.Boolean(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("model_name", sa.String(100), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.UniqueConstraint("community_id", "comment_id", name="uq_comments_community_comment"),
    )
    op.create_index("ix_comments_community_created", "comments", ["community_id", "created_at"])
    op.create_index("ix_comments_community_thread_created", "comments", ["community_id", "thread_id", "created_at"])
    op.create_index("ix_comments_thread_created", "comments", ["thread_id", "created_at"])
    op.create_index("ix_comments_community_parent", "comments", ["community_id", "parent_id"])
    op.create_index("ix_comments_community_author_created", "comments", ["community_id", "author_id", "created_at"])
    op.create_table(
        "threads",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("community_id", sa.String(200), nullable=False),
        sa.Column("thread_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("comment_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("welcoming_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("curious_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("hostile_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("last_hostile_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("community_id", "thread_id", name="uq_threads_community_thread"),
        sa.CheckConstraint("status IN ('open', 'resolved', 'dismissed')", name="ck_threads_status"),
    )
    op.create_index("ix_threads_status_last_hostile", "threads", ["status", "last_hostile_at"])
    op.create_index("ix_threads_community_status", "threads", ["community_id", "status"])


def downgrade() -> None:
    op.drop_table("threads")
    op.drop_table("comments")
    op.drop_table("api_keys")
