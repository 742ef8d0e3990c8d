"""Labels: movable names (``prod``, ``staging``) over immutable versions, with their history.

A move is one row update plus an event and an audit entry, so "where did prod point before?"
is a query, and a rollback is one call that every replica sees at its next read.
"""

from __future__ import annotations

from typing import Literal

from sqlmodel import Session

from control_plane.audit.service import record as audit
from control_plane.errors import Conflict, NotFound
from control_plane.kit.session import flush
from control_plane.kit.time import utcnow
from control_plane.store.tables import LabelEventRow, LabelRow, VersionRow, WorkflowRow
from control_plane.workflows import repository as repo
from control_plane.workflows.lookup import (
    label_public,
    row_id,
    version_detail,
    version_row,
    workflow_row,
)
from control_plane.workflows.ownership import refuse_while_running
from control_plane.workflows.schemas import LabelEventPublic, LabelPublic, VersionDetail

__all__ = [
    "LabelReason",
    "label_history",
    "list_labels",
    "resolve_label",
    "rollback_label",
    "set_label",
]

LabelReason = Literal["promote", "rollback", "set"]


def _move_label(
    session: Session,
    *,
    wf: WorkflowRow,
    label: str,
    target: VersionRow,
    actor: str,
    reason: LabelReason,
) -> LabelPublic:
    if target.status != "active":
        raise Conflict(
            f"{wf.name} {target.version} is archived; a label cannot point at an archived version"
        )
    refuse_while_running(
        session, workflow_id=row_id(wf), workflow=wf.name, label=label, change="move the label"
    )
    row = repo.get_label(session, row_id(wf), label)
    previous = repo.get_version_by_id(session, row.version_id) if row is not None else None
    if row is not None and row.version_id == target.id:
        return label_public(session, wf, row)  # already there: no event, nothing to roll back
    if row is None:
        row = LabelRow(workflow_id=row_id(wf), name=label, version_id=row_id(target))
    else:
        row.version_id = row_id(target)
        row.updated_at = utcnow()
    session.add(row)
    session.add(
        LabelEventRow(
            workflow_id=row_id(wf),
            label=label,
            from_version_id=previous.id if previous is not None else None,
            to_version_id=row_id(target),
            actor=actor,
            reason=reason,
        )
    )
    audit(
        session,
        actor=actor,
        action=f"label.{reason}",
        target_kind="label",
        target=f"{wf.name}:{label}",
        before={"version": previous.version} if previous is not None else None,
        after={"version": target.version},
    )
    flush(session, f"label {label!r} of {wf.name}")
    return label_public(session, wf, row)


def set_label(
    session: Session,
    *,
    workflow: str,
    label: str,
    version: str,
    actor: str,
    reason: LabelReason = "promote",
) -> LabelPublic:
    """Point ``label`` at ``version`` (creating the label on first use), recording the move."""
    wf = workflow_row(session, workflow)
    return _move_label(
        session,
        wf=wf,
        label=label,
        target=version_row(session, wf, version),
        actor=actor,
        reason=reason,
    )


def rollback_label(session: Session, *, workflow: str, label: str, actor: str) -> LabelPublic:
    """Move ``label`` back to where it pointed before its last move, in one call.

    Rolling back twice returns to where it started: each rollback is itself a recorded move.
    """
    wf = workflow_row(session, workflow)
    refuse_while_running(
        session, workflow_id=row_id(wf), workflow=wf.name, label=label, change="move the label"
    )
    last = repo.last_label_event(session, row_id(wf), label)
    if last is None:
        raise Conflict(f"label {label!r} of {workflow} has no history to roll back")
    if last.from_version_id is None:
        raise Conflict(
            f"label {label!r} of {workflow} was created by its last move; "
            f"there is no earlier version to roll back to"
        )
    target = repo.get_version_by_id(session, last.from_version_id)
    assert target is not None  # a foreign key
    return _move_label(session, wf=wf, label=label, target=target, actor=actor, reason="rollback")


def list_labels(session: Session, *, workflow: str) -> list[LabelPublic]:
    wf = workflow_row(session, workflow)
    return [label_public(session, wf, row) for row in repo.labels_of(session, row_id(wf))]


def resolve_label(session: Session, *, workflow: str, label: str) -> VersionDetail:
    """The version a label points at now (what the router runs)."""
    wf = workflow_row(session, workflow)
    row = repo.get_label(session, row_id(wf), label)
    if row is None:
        known = ", ".join(lab.name for lab in repo.labels_of(session, row_id(wf))) or "none yet"
        raise NotFound(f"workflow {workflow!r} has no label {label!r}; labels: {known}")
    target = repo.get_version_by_id(session, row.version_id)
    assert target is not None  # a foreign key
    return version_detail(wf, target)


def label_history(
    session: Session, *, workflow: str, label: str, limit: int = 100
) -> list[LabelEventPublic]:
    """The label's moves, newest first."""
    wf = workflow_row(session, workflow)
    labels: dict[int, str] = {}

    def version_of(version_id: int) -> str:
        if version_id not in labels:
            row = repo.get_version_by_id(session, version_id)
            labels[version_id] = row.version if row is not None else f"#{version_id}"
        return labels[version_id]

    return [
        LabelEventPublic(
            workflow=workflow,
            label=ev.label,
            from_version=version_of(ev.from_version_id) if ev.from_version_id else None,
            to_version=version_of(ev.to_version_id),
            actor=ev.actor,
            at=ev.at,
            reason=ev.reason,  # type: ignore[arg-type]  # the check constraint keeps it a literal
        )
        for ev in repo.label_events(session, row_id(wf), label, limit=limit)
    ]
