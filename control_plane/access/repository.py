"""Queries over the ``api_key`` table: reads and ``add``s only, no validation, no commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from control_plane.store.tables import ApiKeyRow

__all__ = ["get_key", "keys_with_prefix", "list_keys"]


def get_key(session: Session, name: str) -> ApiKeyRow | None:
    return session.exec(select(ApiKeyRow).where(ApiKeyRow.name == name)).first()


def keys_with_prefix(session: Session, prefix: str) -> Sequence[ApiKeyRow]:
    # Usually one row; the prefix is 32 random bits, so a collision is possible and harmless.
    return session.exec(select(ApiKeyRow).where(ApiKeyRow.key_prefix == prefix)).all()


def list_keys(session: Session) -> Sequence[ApiKeyRow]:
    return session.exec(select(ApiKeyRow).order_by(col(ApiKeyRow.name))).all()
