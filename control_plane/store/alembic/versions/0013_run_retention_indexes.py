"""Retention and run listing: indexes for ``GET /v1/runs`` filtered by workflow (and status),
read newest first in index order instead of sorting every run of the workflow, and an index on
``idempotency_key.run_id`` so retention deletes a batch's keys without reading the whole table.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_run_workflow_created", "run", ["workflow", "created_at"]),
    ("ix_run_workflow_status", "run", ["workflow", "status", "created_at"]),
    ("ix_idempotency_key_run_id", "idempotency_key", ["run_id"]),
)


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
