"""The registry: workflows, versions, labels, label history, audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "workflow",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("name", name="uq_workflow_name"),
    )
    op.create_table(
        "workflow_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflow.id"), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.UniqueConstraint("workflow_id", "version", name="uq_workflow_version_label"),
        sa.CheckConstraint("status IN ('active', 'archived')", name="ck_workflow_version_status"),
    )
    op.create_index("ix_workflow_version_digest", "workflow_version", ["workflow_id", "digest"])
    op.create_table(
        "workflow_label",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflow.id"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("workflow_version.id"), nullable=False),
        _ts("updated_at"),
        sa.UniqueConstraint("workflow_id", "name", name="uq_workflow_label_name"),
    )
    op.create_table(
        "workflow_label_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow_id", sa.Integer(), sa.ForeignKey("workflow.id"), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column(
            "from_version_id", sa.Integer(), sa.ForeignKey("workflow_version.id"), nullable=True
        ),
        sa.Column(
            "to_version_id", sa.Integer(), sa.ForeignKey("workflow_version.id"), nullable=False
        ),
        sa.Column("actor", sa.String(length=200), nullable=False),
        _ts("at"),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "reason IN ('promote', 'rollback', 'set')", name="ck_workflow_label_event_reason"
        ),
    )
    op.create_index(
        "ix_workflow_label_event_label", "workflow_label_event", ["workflow_id", "label"]
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target_kind", sa.String(length=50), nullable=False),
        sa.Column("target", sa.String(length=400), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        _ts("at"),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target_kind", "target"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_workflow_label_event_label", table_name="workflow_label_event")
    op.drop_table("workflow_label_event")
    op.drop_table("workflow_label")
    op.drop_index("ix_workflow_version_digest", table_name="workflow_version")
    op.drop_table("workflow_version")
    op.drop_table("workflow")
