"""The store's mark of runs whose evaluators have not run yet: what makes scores land after a
process stopped.

The in-process queue of evaluations is lost with its process (a worker killed after storing a
run, a server restarted). So a succeeded run that its evaluators' sample includes is stored with
``evaluation_due_at`` set, in the same unit of work as the run; the unit that stores its scores
clears it. The periodic sweep of every process takes runs whose mark is older than
``ROLLGRAPH_EVALUATION_RETRY_S`` and offers them again, moving their mark to now (so the next
sweep waits another period). Two processes may take the same run; its scores are stored once
anyway (``service.record_score``), and an evaluator already scored is not run again.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from control_plane.kit.time import utcnow
from control_plane.store.tables import RunRow
from control_plane.workflows import repository as workflows_repo

__all__ = ["DUE_BATCH", "DueRun", "clear_due", "mark_due", "take_due"]

DUE_BATCH = 200  # per sweep: a backlog (a long outage) drains over a few sweeps


@dataclass(frozen=True, slots=True)
class DueRun:
    run_id: str
    version: str
    digest: str
    definition: str  # the version's normalised definition: what compiles its evaluators


def mark_due(session: Session, *, run_id: str) -> None:
    session.execute(
        update(RunRow).where(col(RunRow.id) == run_id).values(evaluation_due_at=utcnow())
    )


def clear_due(session: Session, *, run_id: str) -> None:
    session.execute(update(RunRow).where(col(RunRow.id) == run_id).values(evaluation_due_at=None))


def take_due(session: Session, *, older_than_s: float, limit: int = DUE_BATCH) -> list[DueRun]:
    """Runs due for longer than ``older_than_s``, their marks moved to now."""
    now = utcnow()
    rows = session.exec(
        select(RunRow)
        .where(col(RunRow.evaluation_due_at) <= now - timedelta(seconds=older_than_s))
        .order_by(col(RunRow.evaluation_due_at))
        .limit(limit)
    ).all()
    due: list[DueRun] = []
    for row in rows:
        workflow = workflows_repo.get_workflow(session, row.workflow)
        version = (
            workflows_repo.get_version(session, workflow.id, row.version)
            if workflow is not None and workflow.id is not None
            else None
        )
        row.evaluation_due_at = now if version is not None else None  # no version: never
        session.add(row)
        if version is not None:
            due.append(DueRun(row.id, row.version, version.digest, version.definition))
    return due
