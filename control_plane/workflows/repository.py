"""Queries over the registry tables. Reads and ``add``s only: no validation, no commits, no
errors beyond ``None`` for "not there"; the service decides what a missing row means."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from control_plane.store.tables import LabelEventRow, LabelRow, VersionRow, WorkflowRow

__all__ = [
    "get_label",
    "get_version",
    "get_version_by_id",
    "get_workflow",
    "label_events",
    "labels_for_version",
    "labels_of",
    "last_label_event",
    "list_workflows",
    "version_counts",
    "version_labels",
    "versions_of",
    "versions_with_digest",
]


def get_workflow(session: Session, name: str) -> WorkflowRow | None:
    return session.exec(select(WorkflowRow).where(WorkflowRow.name == name)).first()


def list_workflows(session: Session) -> Sequence[WorkflowRow]:
    return session.exec(select(WorkflowRow).order_by(col(WorkflowRow.name))).all()


def version_counts(session: Session) -> dict[int, int]:
    rows = session.exec(
        select(VersionRow.workflow_id, func.count()).group_by(col(VersionRow.workflow_id))
    ).all()
    return {workflow_id: count for workflow_id, count in rows}


def get_version(session: Session, workflow_id: int, version: str) -> VersionRow | None:
    return session.exec(
        select(VersionRow).where(
            VersionRow.workflow_id == workflow_id, VersionRow.version == version
        )
    ).first()


def get_version_by_id(session: Session, version_id: int) -> VersionRow | None:
    return session.get(VersionRow, version_id)


def versions_of(session: Session, workflow_id: int) -> Sequence[VersionRow]:
    return session.exec(
        select(VersionRow)
        .where(VersionRow.workflow_id == workflow_id)
        .order_by(col(VersionRow.created_at), col(VersionRow.id))
    ).all()


def version_labels(session: Session, workflow_id: int) -> list[str]:
    return list(
        session.exec(
            select(VersionRow.version)
            .where(VersionRow.workflow_id == workflow_id)
            .order_by(col(VersionRow.id))
        )
    )


def versions_with_digest(
    session: Session, workflow_id: int, digest: str, *, status: str | None = None
) -> Sequence[VersionRow]:
    query = select(VersionRow).where(
        VersionRow.workflow_id == workflow_id, VersionRow.digest == digest
    )
    if status is not None:
        query = query.where(VersionRow.status == status)
    return session.exec(query.order_by(col(VersionRow.id))).all()


def get_label(session: Session, workflow_id: int, name: str) -> LabelRow | None:
    return session.exec(
        select(LabelRow).where(LabelRow.workflow_id == workflow_id, LabelRow.name == name)
    ).first()


def labels_of(session: Session, workflow_id: int) -> Sequence[LabelRow]:
    return session.exec(
        select(LabelRow).where(LabelRow.workflow_id == workflow_id).order_by(col(LabelRow.name))
    ).all()


def labels_for_version(session: Session, version_id: int) -> Sequence[LabelRow]:
    return session.exec(
        select(LabelRow).where(LabelRow.version_id == version_id).order_by(col(LabelRow.name))
    ).all()


def label_events(
    session: Session, workflow_id: int, label: str, *, limit: int | None = None
) -> Sequence[LabelEventRow]:
    """Newest first; ``id`` breaks ties because two moves can share a timestamp."""
    query = (
        select(LabelEventRow)
        .where(LabelEventRow.workflow_id == workflow_id, LabelEventRow.label == label)
        .order_by(col(LabelEventRow.id).desc())
    )
    if limit is not None:
        query = query.limit(limit)
    return session.exec(query).all()


def last_label_event(session: Session, workflow_id: int, label: str) -> LabelEventRow | None:
    events = label_events(session, workflow_id, label, limit=1)
    return events[0] if events else None
