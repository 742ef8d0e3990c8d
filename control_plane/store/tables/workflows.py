"""The workflow registry: workflows, their immutable versions, labels and each label's history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from control_plane.store.tables.columns import (
    timestamp,
)

__all__ = ["LabelEventRow", "LabelRow", "VersionRow", "WorkflowRow"]


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflow"
    __table_args__ = (UniqueConstraint("name", name="uq_workflow_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    created_at: datetime = timestamp()


class VersionRow(SQLModel, table=True):
    """One immutable version. ``definition`` is the normalised definition as JSON text (what the
    digest and diffs are taken over); ``source`` is exactly what the user sent."""

    __tablename__ = "workflow_version"
    __table_args__ = (
        UniqueConstraint("workflow_id", "version", name="uq_workflow_version_label"),
        Index("ix_workflow_version_digest", "workflow_id", "digest"),
        CheckConstraint("status IN ('active', 'archived')", name="ck_workflow_version_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    version: str = Field(max_length=100)
    digest: str = Field(max_length=80)
    definition: str = Field(sa_column=Column(Text, nullable=False))
    source: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="active", max_length=16)
    created_at: datetime = timestamp()
    created_by: str = Field(max_length=200)


class LabelRow(SQLModel, table=True):
    """A movable name (``prod``, ``staging``) pointing at one version of a workflow."""

    __tablename__ = "workflow_label"
    __table_args__ = (UniqueConstraint("workflow_id", "name", name="uq_workflow_label_name"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    name: str = Field(max_length=100)
    version_id: int = Field(foreign_key="workflow_version.id")
    updated_at: datetime = timestamp()


class LabelEventRow(SQLModel, table=True):
    """One move of a label; a rollback reads the latest to know where the label came from."""

    __tablename__ = "workflow_label_event"
    __table_args__ = (
        Index("ix_workflow_label_event_label", "workflow_id", "label"),
        CheckConstraint(
            "reason IN ('promote', 'rollback', 'set')", name="ck_workflow_label_event_reason"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    label: str = Field(max_length=100)
    from_version_id: int | None = Field(default=None, foreign_key="workflow_version.id")
    to_version_id: int = Field(foreign_key="workflow_version.id")
    actor: str = Field(max_length=200)
    at: datetime = timestamp()
    reason: str = Field(max_length=16)
