"""The registry's generation: one counter in ``registry_state`` that every audited change
increments in its own transaction, so it follows commit order. Caches of what requests read
(``control_plane.registry``) serve an entry only while the generation it was read at is the
newest; this module only writes and reads the counter."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Table, select, update
from sqlmodel import Session

from control_plane.store.tables import RegistryStateRow

__all__ = ["GENERATION_INFO_KEY", "UNKNOWN_GENERATION", "bump_generation", "read_generation"]

# session.info key: the generation a session's transaction wrote, until it commits or rolls back.
GENERATION_INFO_KEY: Final = "rollgraph.registry_generation"
UNKNOWN_GENERATION: Final = -1  # below every real generation (they start at 0)
# Core, not ORM: no identity map to keep in sync with a counter.
_state: Table = RegistryStateRow.__table__  # type: ignore[attr-defined]


def bump_generation(session: Session) -> int:
    """Increment the registry's generation in ``session``'s transaction and mark the session as a
    registry change; the new generation. Never commits, never flushes."""
    # No autoflush: the caller's pending rows are flushed by its own guarded flush, which turns
    # a unique-constraint race into a 409; an autoflush here would surface it as a 500.
    with session.no_autoflush:
        generation: int = session.execute(
            update(_state)
            .where(_state.c.id == 1)
            .values(generation=_state.c.generation + 1)
            .returning(_state.c.generation)
        ).scalar_one()
    # On PostgreSQL the row lock serialises changers until commit, so this is the value that
    # commits; SQLite has a single writer.
    session.info[GENERATION_INFO_KEY] = max(
        session.info.get(GENERATION_INFO_KEY, UNKNOWN_GENERATION), generation
    )
    return generation


def read_generation(session: Session) -> int:
    """The registry's generation as committed (as of this statement)."""
    generation: int = session.execute(
        select(_state.c.generation).where(_state.c.id == 1)
    ).scalar_one()
    return generation
