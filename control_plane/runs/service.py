"""Runs: choose the version a request runs, record what happened, read runs back.

A run is two units of work around the engine call (the route owns them): ``plan_run`` reads
the registry and decides the version, ``record_run`` stores the run and its trace. No database
transaction stays open while the graph runs, which may take a minute.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

import engine
from control_plane.errors import Conflict, NotFound
from control_plane.rollouts.service import allocation_for, label_version
from control_plane.router import assign
from control_plane.runs import repository as repo
from control_plane.runs.schemas import RunDetail, RunPublic, RunRequest, RunStatus
from control_plane.store.models import RunRow, RunTraceRow, VersionRow, as_utc
from control_plane.workflows._shared import version_row, workflow_row

__all__ = ["DEFAULT_LABEL", "RunPlan", "get_run", "list_runs", "plan_run", "record_run"]

DEFAULT_LABEL = "prod"


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The version chosen for a request, and why (``attrs`` go into the engine's trace)."""

    workflow: str
    version: str
    digest: str
    definition: str
    label: str | None
    user_id: str | None
    reason: str
    attrs: dict[str, Any] = field(default_factory=dict)


def _plan(
    request: RunRequest, row: VersionRow, label: str | None, reason: str, **attrs: Any
) -> RunPlan:
    return RunPlan(
        workflow=request.workflow,
        version=row.version,
        digest=row.digest,
        definition=row.definition,
        label=label,
        user_id=request.user_id,
        reason=reason,
        attrs={"reason": reason, "label": label, **attrs},
    )


def plan_run(session: Session, *, request: RunRequest) -> RunPlan:
    """Choose the version: a ``version`` pin, else a ``label`` pin, else ``prod`` and its
    rollout. ``NotFound`` for an unknown workflow, version or label; ``Conflict`` for a pinned
    archived version (archived versions serve no traffic)."""
    wf = workflow_row(session, request.workflow)
    if request.version is not None:
        row = version_row(session, wf, request.version)
        if row.status != "active":
            raise Conflict(
                f"{wf.name} {row.version} is archived; archived versions serve no traffic"
            )
        return _plan(request, row, None, "pin", assignment="pin")
    if request.label is not None:
        # An explicit label is a pin too: the label's version, without its rollout.
        row = label_version(session, wf, request.label)
        return _plan(request, row, request.label, "label", assignment="label")
    allocation = allocation_for(session, workflow=wf.name, label=DEFAULT_LABEL)
    chosen = assign(allocation, request.user_id)
    if chosen.reason == "random":
        reason = "random"  # no user id: split in proportion, but not sticky
    elif allocation.rollout_buckets > 0:
        reason = f"rollout bucket {chosen.bucket}"
    else:
        reason = "label"
    row = version_row(session, wf, chosen.version)
    return _plan(
        request,
        row,
        DEFAULT_LABEL,
        reason,
        assignment=chosen.reason,
        bucket=chosen.bucket,
        baseline=allocation.baseline,
    )


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
