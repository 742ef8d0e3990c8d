"""The W3C ``traceparent`` of the request that submitted an async run (``run.traceparent``;
NULL when tracing was off or the row predates this revision), so that a run the outbox sweep
queues again still continues its caller's trace on the worker.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_column("traceparent")
