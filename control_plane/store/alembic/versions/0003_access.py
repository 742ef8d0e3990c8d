"""API keys with roles (admin, runner, viewer), stored hashed.

Revision ID: 0003
Revises: 0002
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
        "api_key",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("name", name="uq_api_key_name"),
        sa.CheckConstraint("role IN ('admin', 'runner', 'viewer')", name="ck_api_key_role"),
    )
    op.create_index("ix_api_key_prefix", "api_key", ["key_prefix"])


def downgrade() -> None:
    op.drop_index("ix_api_key_prefix", table_name="api_key")
    op.drop_table("api_key")
