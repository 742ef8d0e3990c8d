"""What every table module shares: the allowed values of constrained columns, and the
timestamp column."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import (
    Column,
    DateTime,
)
from sqlmodel import Field

from control_plane.kit.time import utcnow

__all__ = [
    "EXPERIMENT_STATUSES",
    "IDEMPOTENCY_STATUSES",
    "KEY_ROLES",
    "LABEL_REASONS",
    "METRIC_KINDS",
    "RUN_MODES",
    "RUN_STATUSES",
    "VERSION_STATUSES",
    "timestamp",
]

VERSION_STATUSES: Final = ("active", "archived")
LABEL_REASONS: Final = ("promote", "rollback", "set")
# `queued` is for runs handed to a queue of workers (not used by the in-process server yet).
RUN_STATUSES: Final = ("queued", "running", "succeeded", "failed", "budget_exceeded")
RUN_MODES: Final = ("sync", "async")
KEY_ROLES: Final = ("admin", "runner", "viewer")
IDEMPOTENCY_STATUSES: Final = ("in_progress", "done")
EXPERIMENT_STATUSES: Final = ("running", "stopped", "promoted", "rolled_back")
METRIC_KINDS: Final = ("proportion", "mean")


def timestamp() -> Any:
    # A fresh Column per table: SQLAlchemy columns belong to exactly one table.
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
