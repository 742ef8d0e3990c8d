"""Online evaluators: ``outcome.detail`` (how an evaluator's score was reached: a judge's
reasoning, a check's failed conditions, the evaluation's cost) and ``run.evaluation_due_at``
(a succeeded run whose evaluators have not run yet: the sweep's work after a process stopped).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outcome") as batch:
        batch.add_column(sa.Column("detail", sa.JSON(), nullable=True))
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("evaluation_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_run_evaluation_due", ["evaluation_due_at"])


def downgrade() -> None:
    # The scores stay outcomes to an older server; only how they were reached is gone, and
    # runs still due are not evaluated.
    with op.batch_alter_table("run") as batch:
        batch.drop_index("ix_run_evaluation_due")
        batch.drop_column("evaluation_due_at")
    with op.batch_alter_table("outcome") as batch:
        batch.drop_column("detail")
