"""The outbox mark of queued runs: ``run.enqueued_at``, set once a run's message is on the run
queue. Runs queued before this revision are marked as enqueued (they were, or they were failed
by the sweep already).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE run SET enqueued_at = created_at WHERE status = 'queued'")


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_column("enqueued_at")
