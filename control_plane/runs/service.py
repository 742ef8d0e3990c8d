"""Runs: record what happened, read runs back.

A run is two units of work around the engine call (the route owns them): ``planning.plan_run``
reads the registry and decides the version, ``record_run`` stores the run and its trace. No
database transaction stays open while the graph runs, which may take a minute.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

import engine
from control_plane.errors import NotFound
from control_plane.runs import repository as repo
from control_plane.runs.planning import RunPlan
from control_plane.runs.schemas import RunDetail, RunPublic, RunStatus
from control_plane.store.models import RunRow, RunTraceRow, as_utc

__all__ = ["get_run", "list_runs", "record_run"]


def _public(row: RunRow) -> RunPublic:
    return RunPublic(
        run_id=row.id,
        workflow=row.workflow,
        version=row.version,
        label=row.label,
        user_id=row.user_id,
        status=row.status,  # type: ignore[arg-type]  # the check constraint keeps it a literal
        reason=row.reason,
        outputs=row.outputs,
        error=row.error,
        cost_usd=row.cost_usd,
        latency_s=row.latency_s,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def record_run(session: Session, *, plan: RunPlan, result: engine.RunResult) -> RunPublic:
    """Store a finished run (succeeded or failed) and its trace."""
    stored = result.to_json()
    trace = result.trace
    started = datetime.fromtimestamp(trace.wall_start, UTC)
    latency = trace.latency_s
    row = RunRow(
        id=result.run_id,
        workflow=plan.workflow,
        version=plan.version,
        label=plan.label,
        user_id=plan.user_id,
        status=result.status,
        reason=plan.reason,
        outputs=stored["outputs"],
        error=stored["error"],
        cost_usd=round(trace.cost_usd, 8),
        latency_s=None if latency is None else round(latency, 6),
        created_at=started,
        finished_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()  # the trace's foreign key needs the run row first
    session.add(RunTraceRow(run_id=row.id, trace=stored["trace"]))
    session.flush()
    return _public(row)


def get_run(session: Session, *, run_id: str) -> RunDetail:
    row = repo.get_run(session, run_id)
    if row is None:
        raise NotFound(f"no run {run_id!r}")
    trace = repo.get_trace(session, run_id)
    return RunDetail(**_public(row).model_dump(), trace=trace.trace if trace is not None else {})


def list_runs(
    session: Session,
    *,
    workflow: str | None = None,
    version: str | None = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[RunPublic]:
    """Runs, newest first, filtered; naive ``since``/``until`` are read as UTC."""
    rows = repo.list_runs(
        session,
        workflow=workflow,
        version=version,
        status=status,
        since=as_utc(since) if since is not None else None,
        until=as_utc(until) if until is not None else None,
        limit=limit,
    )
    return [_public(r) for r in rows]
