"""Experiments analysed by unit (user): each unit's running count and total per metric, arm and
ramp step, and the arm's sums over units that the analysis reads.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


_SUMS = ("sum_n", "sum_s", "sum_nn", "sum_ss", "sum_sn")


def _keys() -> list[sa.Column[object]]:
    return [
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiment.id"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "experiment_unit",
        *_keys(),
        sa.Column("unit", sa.String(length=256), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "step", "arm", "metric", "unit"),
    )
    op.create_table(
        "arm_unit_stat",
        *_keys(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=False) for name in _SUMS),
        sa.PrimaryKeyConstraint("experiment_id", "step", "arm", "metric"),
        sa.CheckConstraint("kind IN ('proportion', 'mean')", name="ck_arm_unit_stat_kind"),
    )


def downgrade() -> None:
    op.drop_table("arm_unit_stat")
    op.drop_table("experiment_unit")
