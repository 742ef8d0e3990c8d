"""The outbox of queued runs: an accepted async run always reaches the run queue.

A server stores an async run ``queued`` and commits it before putting its message on the Redis
queue (a worker must never read a message whose run is not stored yet). A replica that dies
between the two leaves a run that no worker will ever see, and an idempotent retry would replay
its 202. So the store is the outbox: ``enqueued_at`` is set once the message is on the queue,
and the periodic sweep puts every run still ``queued`` with no mark after ``grace_s`` back on
the queue. A duplicate message (the replica died after queueing but before marking) is harmless:
a worker takes a run with a conditional update, so the second delivery finds nothing to run.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from control_plane.kit.time import utcnow
from control_plane.store.tables import RunRow

__all__ = ["STRANDED_BATCH", "discard_unqueued", "mark_enqueued", "stranded"]

STRANDED_BATCH = 500  # per sweep: a long outage's backlog drains over a few sweeps


def mark_enqueued(session: Session, *, run_ids: list[str], at: datetime | None = None) -> None:
    """Record that these runs' messages are on the queue."""
    if run_ids:
        session.execute(
            update(RunRow)
            .where(col(RunRow.id).in_(run_ids), col(RunRow.enqueued_at).is_(None))
            .values(enqueued_at=at or utcnow())
        )


def stranded(
    session: Session, *, grace_s: float, now: datetime | None = None
) -> list[tuple[str, str | None]]:
    """Runs stored ``queued`` more than ``grace_s`` ago whose message never reached the queue,
    oldest first, with their submitter's ``traceparent``. The grace covers a submission still
    between its commit and its queueing."""
    cutoff = (now or utcnow()) - timedelta(seconds=grace_s)
    query = (
        select(RunRow.id, RunRow.traceparent)
        .where(
            col(RunRow.status) == "queued",
            col(RunRow.enqueued_at).is_(None),
            col(RunRow.created_at) < cutoff,
        )
        .order_by(col(RunRow.created_at))
        .limit(STRANDED_BATCH)
    )
    return [(run_id, parent) for run_id, parent in session.exec(query).all()]


def discard_unqueued(session: Session, *, run_id: str) -> bool:
    """Delete a run the queue refused before its submission was answered (the client got a
    503 and retries): it never ran, nothing references it, and a failed run in its place would
    count in the error ratio for a request that was never accepted. Whether it was deleted."""
    result = session.execute(
        delete(RunRow).where(
            col(RunRow.id) == run_id,
            col(RunRow.status) == "queued",
            col(RunRow.enqueued_at).is_(None),
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
