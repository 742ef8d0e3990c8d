"""Queries over the ``audit_log`` table: reads only, no commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from control_plane.store.tables import AuditRow

__all__ = ["list_entries"]


def list_entries(
    session: Session,
    *,
    target_kind: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> Sequence[AuditRow]:
    """Newest first. Ordered by id, not by time: ids follow commit order, and two changes in
    the same clock tick keep the order they were made in."""
    query = select(AuditRow)
    if target_kind is not None:
        query = query.where(AuditRow.target_kind == target_kind)
    if target is not None:
        query = query.where(AuditRow.target == target)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    if since is not None:
        query = query.where(col(AuditRow.at) >= since)
    return session.exec(query.order_by(col(AuditRow.id).desc()).limit(limit)).all()
