"""Idempotency claims are leases: ``idempotency_key.holder``, the token of the request that
holds an in-progress claim (renews its ``expires_at`` while its run executes; a takeover sets a
new one). Claims stored before this revision have none: they expire as before and are taken
over once expired.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_key") as batch:
        batch.add_column(sa.Column("holder", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_key") as batch:
        batch.drop_column("holder")
