"""Runs: record what happened, resume what failed, read runs back.

A run is units of work around the engine call (the route owns them): ``planning`` reads the
registry and decides the version; a sync run is then stored once, when it ends
(``record_run``); an async run is stored ``running`` when accepted (``start_run``) and updated
when it ends (``finish_run``). ``claim_resume`` hands a failed run back to the engine under the
same run id. No transaction stays open while a graph runs, which may take minutes.

The completed steps of a run that can still be resumed are kept in ``run_step``; a run that
succeeds drops them. Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

import engine
from control_plane.errors import Conflict, NotFound
from control_plane.experiments.stats import add_run_facts
from control_plane.kit.time import as_utc, utcnow
from control_plane.runs import repository as repo
from control_plane.runs.cost import bounded_cost, storable_trace
from control_plane.runs.planning import RunPlan
from control_plane.runs.schemas import (
    RESUMABLE,
    RunPublic,
)
from control_plane.store.tables import RunRow, RunStepRow, RunTraceRow, VersionRow
from control_plane.workflows import repository as workflows_repo

__all__ = [
    "INTERRUPTED",
    "EndedRun",
    "Resumption",
    "claim_resume",
    "deadline_after",
    "fail_orphans",
    "finish_run",
    "interrupt_run",
    "public",
    "record_run",
    "start_run",
]

INTERRUPTED = (
    "interrupted: the server stopped while this run was in flight; "
    "POST /v1/runs/{run_id}/resume continues it from its completed steps"
)


def public(row: RunRow) -> RunPublic:
    return RunPublic(
        run_id=row.id,
        workflow=row.workflow,
        version=row.version,
        label=row.label,
        user_id=row.user_id,
        mode=row.mode,  # type: ignore[arg-type]  # check constraints keep these literals
        status=row.status,  # type: ignore[arg-type]
        attempt=row.attempt,
        reason=row.reason,
        experiment_id=row.experiment_id,
        outputs=row.outputs,
        error=row.error,
        cost_usd=row.cost_usd,
        latency_s=row.latency_s,
        created_at=row.created_at,
        finished_at=row.finished_at,
        shadow_of=row.shadow_of,
    )


def _experiment_of(plan: RunPlan) -> dict[str, Any]:
    if plan.experiment_id is None:
        return {}
    return {
        "experiment_id": plan.experiment_id,
        "arm": plan.version,
        "experiment_step": plan.experiment_step,
    }


def _save_steps(session: Session, run_id: str, steps: Mapping[str, str]) -> None:
    for key, value in steps.items():
        session.merge(RunStepRow(run_id=run_id, key=key, value=value))


def _apply_result(row: RunRow, result: engine.RunResult, stored: dict[str, Any]) -> None:
    trace = result.trace
    latency = trace.latency_s
    row.status = result.status
    row.outputs = stored["outputs"]
    # Billed over every attempt: a resumed attempt bills only the steps it executed. Bounded
    # (``cost.py``): past the bound the run keeps its status and says what was reported.
    cost, out_of_range = bounded_cost(row.cost_usd + trace.cost_usd)
    row.error = "; ".join(e for e in (stored["error"], out_of_range) if e) or None
    row.cost_usd = round(cost, 8)
    row.latency_s = None if latency is None else round(latency, 6)
    row.finished_at = datetime.now(UTC)
    row.deadline_at = None


def record_run(
    session: Session,
    *,
    plan: RunPlan,
    result: engine.RunResult,
    inputs: Mapping[str, Any],
    steps: Mapping[str, str],
    shadow_of: str | None = None,
) -> RunPublic:
    """Store a finished sync run and its trace; a failed run also keeps its completed
    ``steps`` (key → encoded step) so that it can be resumed. ``shadow_of``: a shadow run, and
    the served run it mirrors."""
    stored = result.to_json()
    row = RunRow(
        id=result.run_id,
        workflow=plan.workflow,
        version=plan.version,
        digest=plan.digest,
        label=plan.label,
        user_id=plan.user_id,
        mode="sync",
        status=result.status,
        reason=plan.reason,
        input=dict(inputs),
        limits=plan.limits,
        created_at=datetime.fromtimestamp(result.trace.wall_start, UTC),
        shadow_of=shadow_of,
        **_experiment_of(plan),
    )
    _apply_result(row, result, stored)
    session.add(row)
    # No flush here: the group commit flushes every run of its batch at once (the unit of work
    # inserts runs before the traces and steps that reference them, each table in one
    # statement); a flush per run was two round trips and most of the writer's time.
    session.add(RunTraceRow(run_id=row.id, attempt=1, trace=storable_trace(stored["trace"])))
    if result.status in RESUMABLE:
        _save_steps(session, row.id, steps)
    add_run_facts(session, row)
    return public(row)


def start_run(
    session: Session,
    *,
    plan: RunPlan,
    run_id: str,
    inputs: Mapping[str, Any],
    deadline_at: datetime,
    status: Literal["running", "queued"] = "running",
    traceparent: str | None = None,
    shadow_of: str | None = None,
) -> RunPublic:
    """Store an accepted async run as ``running`` (this process runs it) or ``queued`` (a
    worker will), before it is answered; ``traceparent``: the request's trace context;
    ``shadow_of``: a shadow run, and the served run it mirrors."""
    row = RunRow(
        id=run_id,
        workflow=plan.workflow,
        version=plan.version,
        digest=plan.digest,
        label=plan.label,
        user_id=plan.user_id,
        mode="async",
        status=status,
        reason=plan.reason,
        input=dict(inputs),
        limits=plan.limits,
        deadline_at=deadline_at,
        traceparent=traceparent,
        shadow_of=shadow_of,
        **_experiment_of(plan),
    )
    session.add(row)
    session.flush()
    return public(row)


def finish_run(
    session: Session,
    *,
    run_id: str,
    result: engine.RunResult,
    steps: Mapping[str, str],
) -> RunPublic:
    """Store how a running run (async, or resumed) ended: its trace as this attempt's; a failed
    run keeps ``steps`` for the next resume, a succeeded one drops every saved step."""
    row = repo.get_run(session, run_id)
    if row is None:
        raise NotFound(f"no run {run_id!r}")
    _apply_result(row, result, result.to_json())
    session.add(row)
    trace = storable_trace(result.trace.to_json())
    # Over the attempt's progress (``progress``), if any was stored while it ran.
    repo.upsert_trace(session, run_id=run_id, attempt=row.attempt, trace=trace)
    if result.status in RESUMABLE:
        _save_steps(session, run_id, steps)
    else:
        session.execute(delete(RunStepRow).where(col(RunStepRow.run_id) == run_id))
    add_run_facts(session, row)
    session.flush()
    return public(row)


@dataclass(frozen=True, slots=True)
class Resumption:
    """What the engine needs to run a failed run again."""

    run: RunPublic
    digest: str
    definition: str
    inputs: dict[str, Any]
    steps: dict[str, str]  # key → encoded step, completed by earlier attempts
    traceparent: str | None = None  # the submitting request's trace context
    limits: dict[str, Any] | None = None  # what the request lowered (``runs.limits``)


def claim_resume(session: Session, *, run_id: str, deadline_at: datetime) -> Resumption:
    """Mark a failed run ``running`` again (attempt + 1), atomically: of two resumes at once
    one wins, the other gets a 409. ``NotFound`` for an unknown run; ``Conflict`` for a run
    that is not failed, or whose version was archived (archived versions serve no traffic)."""
    row = repo.get_run(session, run_id)
    if row is None:
        raise NotFound(f"no run {run_id!r}")
    if row.status not in RESUMABLE:
        what = "is still running" if row.status in ("queued", "running") else "succeeded"
        raise Conflict(
            f"run {run_id} {what}; only a failed run (or one out of budget) can be resumed"
        )
    version = _version_of(session, row)
    if version is None or row.input is None:
        raise Conflict(f"run {run_id} was stored without what a resume needs; run it again")
    if version.status != "active":
        raise Conflict(
            f"{row.workflow} {row.version} is archived; archived versions serve no traffic"
        )
    claimed = session.execute(
        update(RunRow)
        .where(col(RunRow.id) == run_id, col(RunRow.status).in_(RESUMABLE))
        .values(status="running", attempt=RunRow.attempt + 1, deadline_at=deadline_at)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"run {run_id} is being resumed by another request")
    session.refresh(row)
    return _resumption(session, row, version)


def _version_of(session: Session, row: RunRow) -> VersionRow | None:
    wf = workflows_repo.get_workflow(session, row.workflow)
    if wf is None or wf.id is None:
        return None
    return workflows_repo.get_version(session, wf.id, row.version)


def _resumption(session: Session, row: RunRow, version: VersionRow) -> Resumption:
    assert row.input is not None
    steps = session.exec(select(RunStepRow).where(RunStepRow.run_id == row.id)).all()
    return Resumption(
        run=public(row),
        digest=version.digest,
        definition=version.definition,
        inputs=dict(row.input),
        steps={s.key: s.value for s in steps},
        traceparent=row.traceparent,
        limits=row.limits,
    )


def claim_queued(
    session: Session, *, run_id: str, deadline_at: datetime, reclaim: bool
) -> Resumption | None:
    """Take a queued run for this worker: ``queued`` → ``running``, atomically, so that of two
    workers handed the same message one runs it. ``reclaim``: the message was delivered before
    to a worker that stopped reporting; its run may be ``running`` and is taken over (it goes on
    from its completed steps). ``None`` when there is nothing to run: the run ended already (a
    message delivered again after its run was stored) or is unknown."""
    allowed = ("queued", "running") if reclaim else ("queued",)
    claimed = session.execute(
        update(RunRow)
        .where(col(RunRow.id) == run_id, col(RunRow.status).in_(allowed))
        .values(status="running", deadline_at=deadline_at)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = repo.get_run(session, run_id)
    assert row is not None
    session.refresh(row)
    version = _version_of(session, row)
    if version is None or row.input is None:
        raise Conflict(f"run {run_id} was stored without what a run needs")
    return _resumption(session, row, version)


def fail_unstarted(session: Session, *, run_id: str, error: str) -> EndedRun | None:
    """Store a ``queued`` or ``running`` run as failed without a result (it could not be
    queued, or its deliveries ran out): resumable. The run, when this call ended it."""
    return _fail(session, run_id=run_id, error=error, statuses=("queued", "running"))


class EndedRun(NamedTuple):
    """A run this unit of work ended without a result (for the metrics)."""

    workflow: str
    version: str
    mode: str
    attempt: int
    shadow: bool  # a shadow run: counted in the shadow metrics only


_ENDED = (
    *(col(c) for c in (RunRow.workflow, RunRow.version, RunRow.mode, RunRow.attempt)),
    col(RunRow.shadow_of).is_not(None),
)


def interrupt_run(
    session: Session, *, run_id: str, error: str, steps: Mapping[str, str]
) -> EndedRun | None:
    """Store a running run as failed when it was stopped (shutdown) or broke, with the steps it
    completed, so that it can be resumed. The run, when this call is what ended it."""
    ended = _fail(session, run_id=run_id, error=error, statuses=("running",))
    _save_steps(session, run_id, steps)
    return ended


def _fail(
    session: Session, *, run_id: str, error: str, statuses: tuple[str, ...]
) -> EndedRun | None:
    # Conditional: of two processes ending the same run, RETURNING hands it to the one that did.
    ended = session.execute(
        update(RunRow)
        .where(col(RunRow.id) == run_id, col(RunRow.status).in_(statuses))
        .values(status="failed", error=error, finished_at=utcnow(), deadline_at=None)
        .returning(*_ENDED)
    ).all()
    return EndedRun(*ended[0]) if ended else None


def fail_orphans(session: Session, *, now: datetime | None = None) -> list[EndedRun]:
    """Mark failed the runs still ``running`` past their deadline: their process stopped (the
    engine ends every run by its deadline). They can be resumed. Returns the runs this call
    ended (``RETURNING``: of two sweeps at once, each run is returned to the one that won)."""
    cutoff = as_utc(now) if now is not None else utcnow()
    result = session.execute(
        update(RunRow)
        .where(
            col(RunRow.status).in_(("queued", "running")),
            col(RunRow.deadline_at) < cutoff,
        )
        .values(status="failed", error=INTERRUPTED, finished_at=cutoff, deadline_at=None)
        .returning(*_ENDED)
    )
    return [EndedRun(*row) for row in result.all()]


def deadline_after(seconds: float, *, margin_s: float) -> datetime:
    """When a run given ``seconds`` is certainly over, allowing ``margin_s`` to store it."""
    return utcnow() + timedelta(seconds=seconds + margin_s)
