"""Start, stop and read a label's shadow candidate; what its shadow runs spent in the last hour.

One call starts shadowing (or changes it: a new version, percent or cap replaces the old), one
call stops it; each writes an audit row with the settings before and after, in the same unit of
work, which also tells every process's route cache to read the label again. The salt is drawn
when the label is first shadowed and kept, like a rollout's. Functions take the caller's
``Session`` and never commit.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from control_plane.audit.service import record as audit
from control_plane.errors import Conflict, NotFound
from control_plane.kit.session import flush
from control_plane.kit.time import utcnow
from control_plane.rollouts.service import label_version
from control_plane.runs.shadow.schemas import ShadowPublic, UnknownShadowVersion
from control_plane.store.tables import RunRow, ShadowRow, WorkflowRow
from control_plane.workflows import repository as repo
from control_plane.workflows.lookup import row_id, workflow_row

__all__ = ["get_shadow", "spent_last_hour", "start_shadow", "stop_shadow"]


def _row(session: Session, wf: WorkflowRow, label: str) -> ShadowRow | None:
    return session.exec(
        select(ShadowRow).where(ShadowRow.workflow_id == row_id(wf), ShadowRow.label == label)
    ).first()


def _settings(row: ShadowRow) -> dict[str, Any]:
    return {
        "version": row.version,
        "percent": row.percent,
        "max_cost_usd_per_hour": row.max_cost_usd_per_hour,
        "active": row.stopped_at is None,
    }


def spent_last_hour(
    session: Session, *, workflow: str, label: str, now: datetime | None = None
) -> float:
    """Dollars billed by the label's shadow runs created in the hour before ``now``."""
    since = (now or utcnow()) - timedelta(hours=1)
    total = session.exec(
        select(func.coalesce(func.sum(RunRow.cost_usd), 0.0)).where(
            RunRow.workflow == workflow,
            RunRow.label == label,
            col(RunRow.shadow_of).is_not(None),
            RunRow.created_at >= since,
        )
    ).one()
    return float(total)


def _public(session: Session, wf: WorkflowRow, label: str, row: ShadowRow) -> ShadowPublic:
    return ShadowPublic(
        workflow=wf.name,
        label=label,
        served=label_version(session, wf, label).version,
        version=row.version,
        percent=row.percent,
        max_cost_usd_per_hour=row.max_cost_usd_per_hour,
        active=row.stopped_at is None,
        salt=row.salt,
        started_at=row.started_at,
        started_by=row.started_by,
        stopped_at=row.stopped_at,
        cost_usd_last_hour=round(spent_last_hour(session, workflow=wf.name, label=label), 8),
    )


def start_shadow(
    session: Session,
    *,
    workflow: str,
    label: str,
    version: str,
    percent: float,
    max_cost_usd_per_hour: float,
    actor: str,
) -> ShadowPublic:
    """Shadow ``percent`` of ``label``'s users with ``version``, spending at most
    ``max_cost_usd_per_hour``. ``NotFound`` for an unknown workflow or label;
    ``UnknownShadowVersion`` (422) for a version the workflow lacks; ``Conflict`` for an archived
    version or the label's own (which would compare a version with itself)."""
    wf = workflow_row(session, workflow)
    served = label_version(session, wf, label)
    candidate = repo.get_version(session, row_id(wf), version)
    if candidate is None:
        names = [v.version for v in repo.versions_of(session, row_id(wf))]
        known = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
        raise UnknownShadowVersion(
            f"workflow {workflow!r} has no version {version!r}; versions: {known}"
        )
    if candidate.status != "active":
        raise Conflict(f"{workflow} {version} is archived; archived versions run no traffic")
    if candidate.id == served.id:
        raise Conflict(
            f"{workflow} {version} is already the version of label {label!r}; a shadow needs "
            f"a different version to compare with"
        )
    row = _row(session, wf, label)
    before = _settings(row) if row is not None else None
    if row is None:
        row = ShadowRow(
            workflow_id=row_id(wf),
            label=label,
            salt=secrets.token_hex(16),
            version=version,
            percent=percent,
            max_cost_usd_per_hour=max_cost_usd_per_hour,
            started_by=actor,
        )
    else:
        row.version, row.percent = version, percent
        row.max_cost_usd_per_hour = max_cost_usd_per_hour
        row.started_at, row.started_by, row.stopped_at = utcnow(), actor, None
    session.add(row)
    after = _settings(row)
    audit(
        session,
        actor=actor,
        action="shadow.start",
        target_kind="shadow",
        target=f"{workflow}:{label}",
        before={"served": served.version, **before} if before is not None else None,
        after={"served": served.version, **after},
    )
    flush(session, f"shadow of {workflow}:{label}")
    return _public(session, wf, label, row)


def stop_shadow(session: Session, *, workflow: str, label: str, actor: str) -> ShadowPublic:
    """Stop shadowing ``label`` (its settings and salt are kept); ``NotFound`` when no shadow
    is running there. Shadow runs already started finish and are stored."""
    wf = workflow_row(session, workflow)
    served = label_version(session, wf, label)
    row = _row(session, wf, label)
    if row is None or row.stopped_at is not None:
        raise NotFound(f"no shadow is running on {workflow}:{label}")
    before = _settings(row)
    row.stopped_at = utcnow()
    session.add(row)
    audit(
        session,
        actor=actor,
        action="shadow.stop",
        target_kind="shadow",
        target=f"{workflow}:{label}",
        before={"served": served.version, **before},
        after={"served": served.version, **_settings(row)},
    )
    flush(session, f"shadow of {workflow}:{label}")
    return _public(session, wf, label, row)


def get_shadow(session: Session, *, workflow: str, label: str) -> ShadowPublic:
    """The label's shadow settings (running or stopped); ``NotFound`` when never shadowed."""
    wf = workflow_row(session, workflow)
    label_version(session, wf, label)
    row = _row(session, wf, label)
    if row is None:
        raise NotFound(f"{workflow}:{label} has never been shadowed")
    return _public(session, wf, label, row)
