"""Rollouts, runs and their traces.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflow.id"), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        _ts("updated_at"),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.UniqueConstraint("workflow_id", "label", name="uq_rollout_label"),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("workflow", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=True),
        _ts("created_at"),
        _ts("finished_at"),
        sa.CheckConstraint("status IN ('succeeded', 'failed')", name="ck_run_status"),
    )
    op.create_index("ix_run_workflow_version", "run", ["workflow", "version", "created_at"])
    op.create_index("ix_run_status", "run", ["status", "created_at"])
    op.create_index("ix_run_created_at", "run", ["created_at"])
    op.create_table(
        "run_trace",
        sa.Column("run_id", sa.String(length=64), sa.ForeignKey("run.id"), primary_key=True),
        sa.Column("trace", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_trace")
    op.drop_index("ix_run_created_at", table_name="run")
    op.drop_index("ix_run_status", table_name="run")
    op.drop_index("ix_run_workflow_version", table_name="run")
    op.drop_table("run")
    op.drop_table("rollout")
