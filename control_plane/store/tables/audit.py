"""The audit log and the registry's generation (bumped by every audited change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
)
from sqlmodel import Field, SQLModel

from control_plane.store.tables.columns import (
    timestamp,
)

__all__ = ["AuditRow", "RegistryStateRow"]


class AuditRow(SQLModel, table=True):
    """Who changed what, with the state before and after, for every mutation of the registry."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_kind", "target"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=100)
    target_kind: str = Field(max_length=50)
    target: str = Field(max_length=400)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    at: datetime = timestamp()


class RegistryStateRow(SQLModel, table=True):
    """The registry's generation (one row, ``id = 1``): every audited change increments it in its
    own transaction, so caches of registry reads know when they went stale."""

    __tablename__ = "registry_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_registry_state_single_row"),)

    id: int = Field(default=1, sa_column=Column(Integer, primary_key=True, autoincrement=False))
    generation: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
