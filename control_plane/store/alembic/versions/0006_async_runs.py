"""Async runs, resume and stale idempotency claims.

``run``: ``queued``/``running`` statuses, the mode, the input and digest a resume needs, the
attempt counter and the deadline of a run in flight; ``finished_at`` empty while it runs.
``run_trace``: one trace per attempt. ``run_step``: the completed steps of runs that may be
resumed. ``idempotency_key.expires_at``: when an in-progress claim may be taken over.

SQLite cannot alter constraints: ``run`` and ``run_trace`` are copied and moved in batch mode
(``upgrade_to_head`` turns foreign key enforcement off around it, as SQLite requires); the
trace table gets a new primary key by being copied into a new table on both databases.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_constraint("ck_run_status", type_="check")
        batch.create_check_constraint(
            "ck_run_status", "status IN ('queued', 'running', 'succeeded', 'failed')"
        )
        batch.add_column(sa.Column("digest", sa.String(length=80), nullable=True))
        batch.add_column(
            sa.Column("mode", sa.String(length=8), nullable=False, server_default="sync")
        )
        batch.create_check_constraint("ck_run_mode", "mode IN ('sync', 'async')")
        batch.add_column(sa.Column("input", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.alter_column("finished_at", existing_type=sa.DateTime(timezone=True), nullable=True)

    # A new primary key: a new table, filled from the old one (every existing trace is attempt 1).
    op.create_table(
        "run_trace_next",
        sa.Column("run_id", sa.String(length=64), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("trace", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "attempt", name="pk_run_trace"),
    )
    op.execute(
        "INSERT INTO run_trace_next (run_id, attempt, trace) SELECT run_id, 1, trace FROM run_trace"
    )
    op.drop_table("run_trace")
    op.rename_table("run_trace_next", "run_trace")

    op.create_table(
        "run_step",
        sa.Column("run_id", sa.String(length=64), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key"),
    )
    op.add_column(
        "idempotency_key", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("idempotency_key", "expires_at")
    op.drop_table("run_step")
    op.create_table(
        "run_trace_prev",
        sa.Column("run_id", sa.String(length=64), sa.ForeignKey("run.id"), nullable=False),
        sa.Column("trace", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    # The newest attempt's trace is the one a run read before this revision.
    op.execute(
        "INSERT INTO run_trace_prev (run_id, trace) SELECT t.run_id, t.trace FROM run_trace t "
        "WHERE t.attempt = (SELECT max(u.attempt) FROM run_trace u WHERE u.run_id = t.run_id)"
    )
    op.drop_table("run_trace")
    op.rename_table("run_trace_prev", "run_trace")
    for table in ("run_trace", "idempotency_key"):
        op.execute(
            f"DELETE FROM {table} WHERE run_id IN "
            "(SELECT id FROM run WHERE status IN ('queued', 'running'))"
        )
    op.execute("DELETE FROM run WHERE status IN ('queued', 'running')")
    op.execute("UPDATE run SET finished_at = created_at WHERE finished_at IS NULL")
    with op.batch_alter_table("run") as batch:
        batch.drop_constraint("ck_run_mode", type_="check")
        for column in ("deadline_at", "attempt", "input", "mode", "digest"):
            batch.drop_column(column)
        batch.alter_column("finished_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.drop_constraint("ck_run_status", type_="check")
        batch.create_check_constraint("ck_run_status", "status IN ('succeeded', 'failed')")
