"""Experiments: start one on a label, read it, resume it when halted, stop it.

While an experiment runs, it owns its label's traffic: the label's version is the baseline and
the candidates get their shares (the current ramp step's), assigned by user id under the
experiment's own salt, so it is independent of the label's rollout and of other experiments.
At most one experiment runs per label; the label's rollout is set aside meanwhile. A
``halted`` experiment (the evaluator found its numbers untrustworthy) keeps routing at its
step's shares until a person resumes it (``resume_experiment``) or stops it.

Functions take the caller's ``Session`` and never commit; every change is audited (which also
tells every process's registry cache that routing changed).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from control_plane.audit.service import record as audit
from control_plane.errors import Conflict, NotFound
from control_plane.experiments.schemas import BUILTIN_METRICS, ExperimentCreate, ExperimentPublic
from control_plane.kit.session import flush
from control_plane.kit.time import utcnow
from control_plane.rollouts.service import label_version
from control_plane.store.tables import ExperimentRow, MetricRow, WorkflowRow
from control_plane.workflows.labels import set_label
from control_plane.workflows.lookup import row_id, version_row, workflow_row
from control_plane.workflows.ownership import running_on

__all__ = [
    "check_metric_kind",
    "get_experiment",
    "list_experiments",
    "promote_experiment",
    "public",
    "resume_experiment",
    "rollback_experiment",
    "start_experiment",
    "stop_experiment",
]


def public(row: ExperimentRow, workflow: str) -> ExperimentPublic:
    assert row.id is not None
    return ExperimentPublic(
        id=row.id,
        workflow=workflow,
        label=row.label,
        name=row.name,
        status=row.status,  # type: ignore[arg-type]  # the check constraint keeps it a literal
        baseline=row.baseline,
        arms=list(row.arms),
        step=row.step,
        step_started_at=row.step_started_at,
        config=ExperimentCreate.model_validate(row.config),
        created_at=row.created_at,
        created_by=row.created_by,
        ended_at=row.ended_at,
        outcome=row.outcome,
        halted_at=row.halted_at,
        halt_reasons=row.halt_reasons,
        acknowledged=list(row.acknowledged or ()),
    )


def check_metric_kind(session: Session, *, workflow: WorkflowRow, name: str, kind: str) -> None:
    """Fix ``name``'s kind for the workflow on first use; a different kind later is refused
    (``ValueError``: the caller says how it reached us)."""
    builtin = BUILTIN_METRICS.get(name)
    if builtin is not None:
        if builtin != kind:
            raise ValueError(f"{name} is a built-in {builtin} metric")
        return
    known = session.get(MetricRow, (row_id(workflow), name))
    if known is None:
        # Two first values of a new metric at once: both insert; one commit wins and the
        # other request gets the guarded flush's 409 (retry), not a 500.
        session.add(MetricRow(workflow_id=row_id(workflow), name=name, kind=kind))
        flush(session, f"metric {name!r} of {workflow.name}")
    elif known.kind != kind:
        raise ValueError(f"metric {name!r} of {workflow.name} is a {known.kind}, not a {kind}")


def start_experiment(session: Session, *, body: ExperimentCreate, actor: str) -> ExperimentPublic:
    wf = workflow_row(session, body.workflow)
    baseline = label_version(session, wf, body.label)
    versions = [c.version for c in body.candidates] or [body.candidate or ""]
    for version in versions:
        candidate = version_row(session, wf, version)
        if candidate.status != "active":
            raise Conflict(f"{wf.name} {version} is archived; archived versions serve no traffic")
        if candidate.id == baseline.id:
            raise Conflict(
                f"{wf.name} {version} is already the version of label {body.label!r}; "
                f"an experiment needs a different candidate"
            )
    running = running_on(session, workflow_id=row_id(wf), label=body.label)
    if running is not None:
        raise Conflict(
            f"experiment {running.id} already runs on {wf.name}:{body.label}; stop it first"
        )
    for metric in (body.primary, *body.guardrails, *body.secondary):
        assert metric.kind is not None  # filled in by validation
        try:
            check_metric_kind(session, workflow=wf, name=metric.name, kind=metric.kind)
        except ValueError as exc:
            raise Conflict(str(exc)) from exc
    row = ExperimentRow(
        workflow_id=row_id(wf),
        label=body.label,
        name=body.name or f"{wf.name}:{body.label} {baseline.version} vs {', '.join(versions)}",
        salt=secrets.token_hex(16),
        baseline=baseline.version,
        arms=body.shares_at(0),
        config=body.model_dump(mode="json"),
        created_by=actor,
    )
    session.add(row)
    flush(session, f"experiment on {wf.name}:{body.label}")
    audit(
        session,
        actor=actor,
        action="experiment.start",
        target_kind="experiment",
        target=str(row.id),
        before=None,
        after={"workflow": wf.name, "label": body.label, "baseline": row.baseline,
               "arms": row.arms},
    )  # fmt: skip
    return public(row, wf.name)


def _row(session: Session, experiment_id: int) -> tuple[ExperimentRow, WorkflowRow]:
    row = session.get(ExperimentRow, experiment_id)
    if row is None:
        raise NotFound(f"no experiment {experiment_id}")
    wf = session.get(WorkflowRow, row.workflow_id)
    assert wf is not None  # a foreign key
    return row, wf


def get_experiment(session: Session, *, experiment_id: int) -> ExperimentPublic:
    row, wf = _row(session, experiment_id)
    return public(row, wf.name)


def list_experiments(
    session: Session, *, workflow: str | None = None, status: str | None = None
) -> list[ExperimentPublic]:
    query = select(ExperimentRow, WorkflowRow).where(ExperimentRow.workflow_id == WorkflowRow.id)
    if workflow is not None:
        query = query.where(WorkflowRow.name == workflow)
    if status is not None:
        query = query.where(ExperimentRow.status == status)
    rows = session.exec(query.order_by(col(ExperimentRow.id).desc())).all()
    return [public(row, wf.name) for row, wf in rows]


def _move(session: Session, row: ExperimentRow, **values: Any) -> None:
    """Change the experiment only if it is still in the status and step we read: the evaluator
    in another process may have acted meanwhile (a rollback must not be overwritten by a stop)."""
    changed = session.execute(
        update(ExperimentRow)
        .where(
            col(ExperimentRow.id) == row.id,
            col(ExperimentRow.status) == row.status,
            col(ExperimentRow.step) == row.step,
        )
        .values(**values)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"experiment {row.id} changed while this request ran; read it again")
    session.refresh(row)


def stop_experiment(
    session: Session, *, experiment_id: int, actor: str, reason: str = "stopped by hand"
) -> ExperimentPublic:
    """End a running or halted experiment: the candidates go to 0 % and the label's traffic
    goes back to its version (and rollout)."""
    row, wf = _row(session, experiment_id)
    if row.status not in ("running", "halted"):
        raise Conflict(f"experiment {experiment_id} is {row.status}, not running or halted")
    before = {"status": row.status, "step": row.step, "arms": row.arms}
    if row.status == "halted" and row.halt_reasons:
        why = "; ".join(str(r.get("message")) for r in row.halt_reasons)
        reason = f"{reason}, halted: {why}"
    zero = [{"version": a["version"], "share": 0.0} for a in row.arms]
    _move(session, row, status="stopped", ended_at=utcnow(), outcome=reason, arms=zero)
    audit(
        session,
        actor=actor,
        action="experiment.stop",
        target_kind="experiment",
        target=str(row.id),
        before=before,
        after={"status": "stopped", "reason": reason, "halt_reasons": row.halt_reasons},
    )
    flush(session, f"experiment {experiment_id}")
    return public(row, wf.name)


def resume_experiment(session: Session, *, experiment_id: int, actor: str) -> ExperimentPublic:
    """A halted experiment runs again: the evaluator goes on with it, and the reason codes it
    halted for are acknowledged (they halt it no more: a person looked and accepted them)."""
    row, wf = _row(session, experiment_id)
    if row.status != "halted":
        raise Conflict(f"experiment {experiment_id} is {row.status}; only a halted one resumes")
    codes = [str(r.get("code")) for r in row.halt_reasons or ()]
    acknowledged = sorted({*(row.acknowledged or ()), *codes})
    halted_at = row.halted_at.isoformat() if row.halted_at is not None else None
    before = {"status": "halted", "halted_at": halted_at, "halt_reasons": row.halt_reasons}
    _move(session, row, status="running", acknowledged=acknowledged, halted_at=None,
          halt_reasons=None)  # fmt: skip
    audit(
        session,
        actor=actor,
        action="experiment.resume",
        target_kind="experiment",
        target=str(row.id),
        before=before,
        after={"status": "running", "acknowledged": acknowledged},
    )
    flush(session, f"experiment {experiment_id}")
    return public(row, wf.name)


def promote_experiment(
    session: Session, *, experiment_id: int, version: str, actor: str
) -> ExperimentPublic:
    """End a running or halted experiment by hand with ``version`` (one of its candidates)
    promoted: the label moves to it in the same unit of work, both audited. A person may act on
    what the results show before ``auto_promote`` would, or with it off."""
    row, wf = _row(session, experiment_id)
    if row.status not in ("running", "halted"):
        raise Conflict(f"experiment {experiment_id} is {row.status}, not running or halted")
    candidates = [str(a["version"]) for a in row.arms]
    if version not in candidates:
        raise Conflict(
            f"{version!r} is not a candidate of experiment {experiment_id}: "
            f"{', '.join(candidates) or 'none'}"
        )
    before = {"status": row.status, "step": row.step, "arms": row.arms}
    _move(session, row, status="promoted", ended_at=utcnow(),
          outcome=f"{version} promoted by {actor}")  # fmt: skip
    flush(session, f"experiment {experiment_id}")  # the label's guard must see it ended
    set_label(session, workflow=wf.name, label=row.label, version=version, actor=actor)
    audit(session, actor=actor, action="experiment.promote", target_kind="experiment",
          target=str(row.id), before=before,
          after={"status": "promoted", "version": version})  # fmt: skip
    return public(row, wf.name)


def rollback_experiment(session: Session, *, experiment_id: int, actor: str) -> ExperimentPublic:
    """End a running or halted experiment by hand as rolled back: the candidates go to 0 % and
    the label's traffic back to its version (the label does not move)."""
    row, wf = _row(session, experiment_id)
    if row.status not in ("running", "halted"):
        raise Conflict(f"experiment {experiment_id} is {row.status}, not running or halted")
    before = {"status": row.status, "step": row.step, "arms": row.arms}
    zero = [{"version": a["version"], "share": 0.0} for a in row.arms]
    _move(session, row, status="rolled_back", ended_at=utcnow(),
          outcome=f"rolled back by {actor}", arms=zero)  # fmt: skip
    audit(session, actor=actor, action="experiment.rollback", target_kind="experiment",
          target=str(row.id), before=before, after={"status": "rolled_back"})  # fmt: skip
    flush(session, f"experiment {experiment_id}")
    return public(row, wf.name)
