"""Reading runs: one run with its trace and step states, and the filtered listing.

The read side of ``runs.service``: it never writes, and a run in flight is read with the
running attempt's progress (``runs.progress``), not the attempt before it.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from control_plane.errors import NotFound
from control_plane.kit.time import as_utc
from control_plane.runs import repository as repo
from control_plane.runs.schemas import RunDetail, RunMode, RunPublic, RunStatus, step_states
from control_plane.runs.service import public

__all__ = ["get_run", "list_runs"]


def get_run(session: Session, *, run_id: str, attempt: int | None = None) -> RunDetail:
    row = repo.get_run(session, run_id)
    if row is None:
        raise NotFound(f"no run {run_id!r}")
    in_flight = row.status in ("queued", "running")
    if attempt is None and in_flight:
        # The running attempt's progress (none until its first snapshot), never the steps of
        # the attempt before it: a follower would take a resume's old failure for news.
        trace = repo.get_trace(session, run_id, row.attempt)
    else:
        trace = repo.get_trace(session, run_id, attempt)
    if trace is None and attempt is not None:
        raise NotFound(f"run {run_id} has no trace of attempt {attempt} (attempts: {row.attempt})")
    stored = trace.trace if trace is not None else {}
    return RunDetail(
        **public(row).model_dump(),
        input=row.input,
        trace=stored,
        trace_attempt=trace.attempt if trace is not None else None,
        steps=step_states(stored, ended=not in_flight),
    )


def list_runs(
    session: Session,
    *,
    workflow: str | None = None,
    version: str | None = None,
    label: str | None = None,
    user_id: str | None = None,
    status: RunStatus | None = None,
    mode: RunMode | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[RunPublic]:
    """Runs, newest first, filtered; naive ``since``/``until`` are read as UTC."""
    rows = repo.list_runs(
        session,
        workflow=workflow,
        version=version,
        label=label,
        user_id=user_id,
        status=status,
        mode=mode,
        since=as_utc(since) if since is not None else None,
        until=as_utc(until) if until is not None else None,
        limit=limit,
    )
    return [public(r) for r in rows]
