"""API keys, stored hashed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from control_plane.store.tables.columns import (
    timestamp,
)

__all__ = ["ApiKeyRow"]


class ApiKeyRow(SQLModel, table=True):
    """An API key: its name (the actor in audit rows), role, and a hash, never the key itself.

    ``key_prefix`` is the random part after ``rg_`` that is shown in listings and finds the row
    without a scan; ``key_hash`` is the SHA-256 of the whole key. Revoked keys keep their row
    and name, so an audit row's actor always names one key.
    """

    __tablename__ = "api_key"
    __table_args__ = (
        UniqueConstraint("name", name="uq_api_key_name"),
        Index("ix_api_key_prefix", "key_prefix"),
        CheckConstraint("role IN ('admin', 'runner', 'viewer')", name="ck_api_key_role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    role: str = Field(max_length=16)
    key_prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64)
    created_at: datetime = timestamp()
    created_by: str = Field(max_length=200)
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
