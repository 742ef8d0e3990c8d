"""The outcome table: one row per (run, metric), inserted at most once.

Here, below ``runs``, because both a client's outcome (``outcomes.service``) and an
evaluator's score (``runs.evaluations``) are inserted by it.

Two clients sending the same outcome at once (a retry racing its original) both try to insert
it. An ``INSERT ... ON CONFLICT DO NOTHING`` settles that in the database: on PostgreSQL the
second insert waits for the first transaction and then does nothing, on SQLite writers are
serialised anyway. The loser reads the winner's value and answers as a retry would, so neither
client sees an integrity error.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from control_plane.kit.time import utcnow
from control_plane.store.tables import OutcomeRow

__all__ = ["insert_outcome"]

_table: Table = OutcomeRow.__table__  # type: ignore[attr-defined]


def insert_outcome(
    session: Session,
    *,
    run_id: str,
    metric: str,
    value: float,
    detail: dict[str, Any] | None = None,
) -> float | None:
    """Store the outcome unless the run already has one for ``metric``; ``None`` when this call
    stored it, otherwise the value stored before (by an earlier or a concurrent request)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(_table)
        .values(run_id=run_id, metric=metric, value=value, recorded_at=utcnow(), detail=detail)
        .on_conflict_do_nothing(index_elements=["run_id", "metric"])
        .returning(_table.c.value)
    )
    if session.execute(statement).first() is not None:
        return None
    # A column read, not an entity: the session's identity map cannot hand back a stale row.
    stored = session.execute(
        select(OutcomeRow.value).where(OutcomeRow.run_id == run_id, OutcomeRow.metric == metric)
    ).scalar_one()
    return float(stored)
