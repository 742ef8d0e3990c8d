"""Retention: the periodic sweep deletes ended runs older than ``run_retention_days``.

A run is deleted with everything that names it by foreign key (its traces, its completed steps,
its outcomes) and with the ``Idempotency-Key`` records that name it, so a retried request never
replays the answer of a run that is no longer there (it runs again, as a key that expired
would). Experiment statistics are sums kept apart from the runs (``arm_stat``,
``arm_unit_stat``, ``experiment_unit``), so results, decisions and the audit log do not change;
only a new unit's CUPED covariate, read from a user's earlier runs, sees fewer of them.

Each batch of at most ``run_retention_batch`` runs is a transaction of its own, oldest first,
so the sweep never holds row locks over more than one batch, and the runs' writers and readers
go on between batches. On PostgreSQL the batch's run rows are taken ``FOR UPDATE SKIP LOCKED``:
replicas sweeping at the same time take different runs instead of waiting on each other.
Queued and running runs are never deleted, however old: the orphan sweep ends them first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from control_plane.kit.time import utcnow
from control_plane.store.db import SessionFactory, run_unit
from control_plane.store.tables import (
    IdempotencyKeyRow,
    OutcomeRow,
    RunRow,
    RunStepRow,
    RunTraceRow,
)

__all__ = ["MAX_BATCHES_PER_SWEEP", "delete_batch", "sweep"]

log = logging.getLogger(__name__)

# A first sweep over a long-kept store deletes at most this many batches; the next sweeps go on
# from there, so turning retention on never makes one sweep run for hours.
MAX_BATCHES_PER_SWEEP = 100
ENDED = ("succeeded", "failed")


def delete_batch(session: Session, *, cutoff: datetime, limit: int) -> int:
    """Delete at most ``limit`` ended runs created before ``cutoff``, oldest first, with their
    traces, steps, outcomes and idempotency keys; how many runs. The caller commits."""
    query = (
        select(RunRow.id)
        .where(col(RunRow.created_at) < cutoff, col(RunRow.status).in_(ENDED))
        .order_by(col(RunRow.created_at))
        .limit(limit)
        .with_for_update(skip_locked=True)  # rendered on PostgreSQL only
    )
    ids = list(session.exec(query).all())
    if not ids:
        return 0
    for table, column in (
        (RunTraceRow, RunTraceRow.run_id),
        (RunStepRow, RunStepRow.run_id),
        (OutcomeRow, OutcomeRow.run_id),
        (IdempotencyKeyRow, IdempotencyKeyRow.run_id),
    ):
        session.execute(delete(table).where(col(column).in_(ids)))
    session.execute(delete(RunRow).where(col(RunRow.id).in_(ids)))
    return len(ids)


async def sweep(
    factory: SessionFactory,
    *,
    days: float | None,
    batch: int,
    now: datetime | None = None,
    max_batches: int = MAX_BATCHES_PER_SWEEP,
) -> int:
    """Delete the runs past retention, a batch per transaction, until a batch comes back short
    or ``max_batches`` were deleted; how many runs. Nothing when ``days`` is unset."""
    if days is None:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    deleted = 0
    for _ in range(max_batches):
        count = await run_unit(factory, lambda s: delete_batch(s, cutoff=cutoff, limit=batch))
        deleted += count
        if count < batch:
            break
    if deleted:
        log.info("deleted %d run(s) older than %g days (retention)", deleted, days)
    return deleted
