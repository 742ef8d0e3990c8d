"""The registry's generation: one counter every change to the registry increments.

Processes cache what they read from the registry (labels, rollouts, versions, API keys) and
keep an entry only while the generation it was read at is current. The counter lives in one row
that every change updates in its own transaction, so the generation follows commit order on
PostgreSQL too (a sequence would not: ids are handed out before commit).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_registry_state_single_row"),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("registry_state")
