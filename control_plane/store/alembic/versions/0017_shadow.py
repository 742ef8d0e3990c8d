"""Shadow traffic: ``label_shadow`` (a label's shadow candidate: version, percent, hourly cost
cap, its own salt) and ``run.shadow_of`` (a shadow run names the served run it mirrors).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_shadow",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflow.id"), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("max_cost_usd_per_hour", sa.Float(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("workflow_id", "label", name="uq_label_shadow_label"),
        sa.CheckConstraint("percent > 0 AND percent <= 100", name="ck_label_shadow_percent"),
        sa.CheckConstraint("max_cost_usd_per_hour > 0", name="ck_label_shadow_cost"),
    )
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("shadow_of", sa.String(length=64), nullable=True))
        batch.create_index("ix_run_shadow_of", ["shadow_of"])


def downgrade() -> None:
    # Shadow runs become plain runs of their version to an older server; they were never served.
    with op.batch_alter_table("run") as batch:
        batch.drop_index("ix_run_shadow_of")
        batch.drop_column("shadow_of")
    op.drop_table("label_shadow")
