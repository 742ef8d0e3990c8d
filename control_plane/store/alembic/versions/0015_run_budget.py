"""Run budgets: the ``budget_exceeded`` run status (a run stopped before a step that would take
it past its budget; resumable like a failed one) and ``run.limits``, what the request lowered
(``{"budget": {...}, "deadline_s": s}``), so that a queued run's worker and a resume apply it.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_WITH = "status IN ('queued', 'running', 'succeeded', 'failed', 'budget_exceeded')"
_WITHOUT = "status IN ('queued', 'running', 'succeeded', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_constraint("ck_run_status", type_="check")
        batch.create_check_constraint("ck_run_status", _WITH)
        batch.add_column(sa.Column("limits", sa.JSON(), nullable=True))


def downgrade() -> None:
    # An older server knows no such status: those runs read as failed (still resumable).
    op.execute("UPDATE run SET status = 'failed' WHERE status = 'budget_exceeded'")
    with op.batch_alter_table("run") as batch:
        batch.drop_column("limits")
        batch.drop_constraint("ck_run_status", type_="check")
        batch.create_check_constraint("ck_run_status", _WITHOUT)
