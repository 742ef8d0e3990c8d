"""Each look at an experiment with new data (``experiment_look``): per candidate and metric the
effect, its interval and p-values at that moment, the series the console charts. Decisions
are stored only when something new was decided, so they cannot draw an interval narrowing.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiment_look",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiment.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("observations", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
    )
    op.create_index("ix_experiment_look_experiment", "experiment_look", ["experiment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_experiment_look_experiment", table_name="experiment_look")
    op.drop_table("experiment_look")
