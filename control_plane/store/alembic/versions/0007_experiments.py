"""Experiments: the experiment table, its decisions, per-arm sufficient statistics, outcomes,
metric kinds, and the experiment, arm and step that routed each run.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflow.id"), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("baseline", sa.String(length=100), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'stopped', 'promoted', 'rolled_back')",
            name="ck_experiment_status",
        ),
    )
    op.create_index("ix_experiment_label", "experiment", ["workflow_id", "label", "status"])
    op.create_table(
        "arm_stat",
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiment.id"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("total_sq", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "step", "arm", "metric"),
        sa.CheckConstraint("kind IN ('proportion', 'mean')", name="ck_arm_stat_kind"),
    )
    op.create_table(
        "metric",
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflow.id"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "name"),
        sa.CheckConstraint("kind IN ('proportion', 'mean')", name="ck_metric_kind"),
    )
    op.create_table(
        "outcome",
        sa.Column("run_id", sa.String(length=64), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "metric"),
    )
    op.create_table(
        "experiment_decision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiment.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("applied", sa.String(length=32), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_experiment_decision_experiment", "experiment_decision", ["experiment_id", "at"]
    )
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("experiment_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("arm", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("experiment_step", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_run_experiment_id", "experiment", ["experiment_id"], ["id"])
    op.create_index("ix_run_experiment", "run", ["experiment_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_run_experiment", table_name="run")
    with op.batch_alter_table("run") as batch:
        batch.drop_constraint("fk_run_experiment_id", type_="foreignkey")
        for column in ("experiment_step", "arm", "experiment_id"):
            batch.drop_column(column)
    op.drop_index("ix_experiment_decision_experiment", table_name="experiment_decision")
    for table in ("experiment_decision", "outcome", "metric", "arm_stat"):
        op.drop_table(table)
    op.drop_index("ix_experiment_label", table_name="experiment")
    op.drop_table("experiment")
