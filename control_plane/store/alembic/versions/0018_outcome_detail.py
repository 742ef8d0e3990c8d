"""Online evaluators: ``outcome.detail`` (how an evaluator's score was reached: a judge's
reasoning, a check's failed conditions, the evaluation's cost).

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


def downgrade() -> None:
    # The scores stay outcomes to an older server; only how they were reached is gone.
    with op.batch_alter_table("outcome") as batch:
        batch.drop_column("detail")
