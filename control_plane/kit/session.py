"""The guarded flush: a unique-constraint race between two writers is the loser's 409, not a
500."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from control_plane.errors import Conflict

__all__ = ["flush"]


def flush(session: Session, what: str) -> None:
    # Two writers racing on the same name or label: the loser gets a 409, not a 500.
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{what} was changed concurrently; retry the request") from exc
