"""Halted experiments: ``experiment.status`` may be ``halted``, with ``halted_at``, the
``halt_reasons`` and the reason codes a person ``acknowledged`` by resuming.

SQLite cannot alter a check constraint: the table is copied in batch mode (``upgrade_to_head``
turns foreign key enforcement off around it); PostgreSQL alters it in place. A downgrade stops
the experiments that are halted (the old constraint has no such status).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_OLD = "status IN ('running', 'stopped', 'promoted', 'rolled_back')"
_NEW = "status IN ('running', 'halted', 'stopped', 'promoted', 'rolled_back')"


def upgrade() -> None:
    with op.batch_alter_table("experiment") as batch:
        batch.drop_constraint("ck_experiment_status", type_="check")
        batch.create_check_constraint("ck_experiment_status", _NEW)
        batch.add_column(sa.Column("halted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("halt_reasons", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("acknowledged", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.execute(
        "UPDATE experiment SET status = 'stopped', ended_at = halted_at, "
        "outcome = 'stopped: halted when the schema was downgraded' WHERE status = 'halted'"
    )
    with op.batch_alter_table("experiment") as batch:
        batch.drop_column("acknowledged")
        batch.drop_column("halt_reasons")
        batch.drop_column("halted_at")
        batch.drop_constraint("ck_experiment_status", type_="check")
        batch.create_check_constraint("ck_experiment_status", _OLD)
