"""Shadow candidates: a version that runs, unseen, on a share of a label's requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.store.tables.columns import timestamp

__all__ = ["ShadowRow"]


class ShadowRow(SQLModel, table=True):
    """A label's shadow candidate: ``version`` runs on a copy of the inputs of ``percent`` of
    the label's requests after they were answered, spending at most ``max_cost_usd_per_hour``.

    One row per label, kept when shadowing stops (``stopped_at``) so that the comparison of a
    stopped shadow still knows its version, and so that ``salt`` (drawn once) keeps the same
    users shadowed when it is started again.
    """

    __tablename__ = "label_shadow"
    __table_args__ = (
        UniqueConstraint("workflow_id", "label", name="uq_label_shadow_label"),
        CheckConstraint("percent > 0 AND percent <= 100", name="ck_label_shadow_percent"),
        CheckConstraint("max_cost_usd_per_hour > 0", name="ck_label_shadow_cost"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    label: str = Field(max_length=100)
    version: str = Field(max_length=100)
    percent: float
    max_cost_usd_per_hour: float
    salt: str = Field(max_length=64)
    started_at: datetime = timestamp()
    started_by: str = Field(max_length=200)
    stopped_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
