"""Persistence: engine/session creation, the SQLModel tables, and Alembic migrations."""

from control_plane.store.db import create_db_engine, is_sqlite, make_session_factory, session_scope
from control_plane.store.migrations import current_revision, head_revision, migrate, upgrade_to_head

__all__ = [
    "create_db_engine",
    "current_revision",
    "head_revision",
    "is_sqlite",
    "make_session_factory",
    "migrate",
    "session_scope",
    "upgrade_to_head",
]
