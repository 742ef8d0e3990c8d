"""Queries over the ``run`` and ``run_trace`` tables: reads and ``add``s only, no commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from control_plane.store.tables import RunRow, RunTraceRow

__all__ = ["get_run", "get_trace", "list_runs", "runs_query", "upsert_trace"]

_traces: Table = RunTraceRow.__table__  # type: ignore[attr-defined]


def get_run(session: Session, run_id: str) -> RunRow | None:
    return session.get(RunRow, run_id)


def get_trace(session: Session, run_id: str, attempt: int | None = None) -> RunTraceRow | None:
    """The trace of ``attempt``, or the newest one."""
    if attempt is not None:
        return session.get(RunTraceRow, (run_id, attempt))
    query = (
        select(RunTraceRow)
        .where(RunTraceRow.run_id == run_id)
        .order_by(col(RunTraceRow.attempt).desc())
        .limit(1)
    )
    return session.exec(query).first()


def upsert_trace(session: Session, *, run_id: str, attempt: int, trace: dict[str, Any]) -> None:
    """Store ``trace`` as ``attempt``'s, replacing what is there (its progress so far)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_traces).values(run_id=run_id, attempt=attempt, trace=trace)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["run_id", "attempt"], set_={"trace": statement.excluded.trace}
        )
    )


def list_runs(
    session: Session,
    *,
    workflow: str | None = None,
    version: str | None = None,
    label: str | None = None,
    user_id: str | None = None,
    status: str | None = None,
    mode: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> Sequence[RunRow]:
    """Newest first; the id (time-ordered) breaks ties between runs started in the same tick."""
    query = runs_query(
        workflow=workflow,
        version=version,
        label=label,
        user_id=user_id,
        status=status,
        mode=mode,
        since=since,
        until=until,
        limit=limit,
    )
    return session.exec(query).all()


def runs_query(
    *,
    workflow: str | None = None,
    version: str | None = None,
    label: str | None = None,
    user_id: str | None = None,
    status: str | None = None,
    mode: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> SelectOfScalar[RunRow]:
    """The query ``list_runs`` runs (apart, so its plan can be checked with ``EXPLAIN``)."""
    query = select(RunRow)
    if workflow is not None:
        query = query.where(RunRow.workflow == workflow)
    if version is not None:
        query = query.where(RunRow.version == version)
    if label is not None:
        query = query.where(RunRow.label == label)
    if user_id is not None:
        query = query.where(RunRow.user_id == user_id)
    if status is not None:
        query = query.where(RunRow.status == status)
    if mode is not None:
        query = query.where(RunRow.mode == mode)
    if since is not None:
        query = query.where(col(RunRow.created_at) >= since)
    if until is not None:
        query = query.where(col(RunRow.created_at) < until)
    return query.order_by(col(RunRow.created_at).desc(), col(RunRow.id).desc()).limit(limit)
