"""CUPED: each unit's pre-exposure covariate (``experiment_unit.covariate``, the unit's mean of
the metric before the experiment started; NULL where the experiment does not use CUPED or the
row predates this revision) and the arm's covariance terms over units
(``arm_unit_stat.sum_x``, ``sum_xx``, ``sum_xs``, ``sum_xn``, and ``covered``: units with
pre-exposure data). Rows stored before read 0: no covariate, analysed unadjusted. An index on
runs by workflow and user makes a user's earlier runs one range read.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_SUMS = ("sum_x", "sum_xx", "sum_xs", "sum_xn")


def upgrade() -> None:
    with op.batch_alter_table("experiment_unit") as batch:
        batch.add_column(sa.Column("covariate", sa.Float(), nullable=True))
    with op.batch_alter_table("arm_unit_stat") as batch:
        for name in _SUMS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("covered", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index("ix_run_workflow_user", "run", ["workflow", "user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_run_workflow_user", table_name="run")
    with op.batch_alter_table("arm_unit_stat") as batch:
        for name in (*_SUMS, "covered"):
            batch.drop_column(name)
    with op.batch_alter_table("experiment_unit") as batch:
        batch.drop_column("covariate")
