"""Look-ups of workflows and versions that raise ``NotFound`` naming what does exist, and their
conversions to public schemas: used by every domain that takes a workflow or version name."""

from __future__ import annotations

import json

from sqlmodel import Session

from control_plane.errors import NotFound
from control_plane.store.tables import LabelRow, VersionRow, WorkflowRow
from control_plane.workflows import repository as repo
from control_plane.workflows.schemas import LabelPublic, VersionDetail, VersionPublic

__all__ = [
    "label_public",
    "row_id",
    "version_detail",
    "version_public",
    "version_row",
    "workflow_row",
]


def workflow_row(session: Session, name: str) -> WorkflowRow:
    row = repo.get_workflow(session, name)
    if row is None:
        known = ", ".join(w.name for w in repo.list_workflows(session)) or "none yet"
        raise NotFound(f"no workflow named {name!r}; workflows: {known}")
    return row


def row_id(row: WorkflowRow | VersionRow) -> int:
    assert row.id is not None  # rows handed out by the repository are flushed
    return row.id


def version_row(session: Session, workflow: WorkflowRow, version: str) -> VersionRow:
    row = repo.get_version(session, row_id(workflow), version)
    if row is None:
        known = ", ".join(repo.version_labels(session, row_id(workflow))) or "none yet"
        raise NotFound(f"workflow {workflow.name!r} has no version {version!r}; versions: {known}")
    return row


def version_public(workflow: WorkflowRow, row: VersionRow) -> VersionPublic:
    return VersionPublic(
        workflow=workflow.name,
        version=row.version,
        digest=row.digest,
        status=row.status,  # type: ignore[arg-type]  # the check constraint keeps it a literal
        created_at=row.created_at,
        created_by=row.created_by,
    )


def label_public(session: Session, workflow: WorkflowRow, label: LabelRow) -> LabelPublic:
    target = repo.get_version_by_id(session, label.version_id)
    assert target is not None  # a foreign key
    return LabelPublic(
        workflow=workflow.name, name=label.name, version=target.version, updated_at=label.updated_at
    )


def version_detail(workflow: WorkflowRow, row: VersionRow) -> VersionDetail:
    return VersionDetail(
        **version_public(workflow, row).model_dump(),
        definition=json.loads(row.definition),
        source=row.source,
    )
