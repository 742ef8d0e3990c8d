"""Rollouts: a label's candidates and their shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from control_plane.store.tables.columns import (
    timestamp,
)

__all__ = ["RolloutRow"]


class RolloutRow(SQLModel, table=True):
    """A label's rollout: candidates that take a share of the traffic the label would get.

    ``salt`` is drawn once when the row is created and never changes, so a user's bucket is the
    same for the whole life of the rollout (ramping 10 % → 20 % only adds users). Setting the
    share to 0 empties ``candidates`` but keeps the row, and with it the salt.
    """

    __tablename__ = "rollout"
    __table_args__ = (UniqueConstraint("workflow_id", "label", name="uq_rollout_label"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    label: str = Field(max_length=100)
    salt: str = Field(max_length=64)
    # [{"version": "v3.3", "share": 0.1}]; shares are fractions of all of the label's traffic.
    candidates: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    updated_at: datetime = timestamp()
    updated_by: str = Field(max_length=200)
