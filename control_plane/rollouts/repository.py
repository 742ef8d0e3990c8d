"""Queries over the ``rollout`` table: reads and ``add``s only, no validation, no commits."""

from __future__ import annotations

from sqlmodel import Session, select

from control_plane.store.tables import RolloutRow

__all__ = ["get_rollout"]


def get_rollout(session: Session, workflow_id: int, label: str) -> RolloutRow | None:
    return session.exec(
        select(RolloutRow).where(RolloutRow.workflow_id == workflow_id, RolloutRow.label == label)
    ).first()
