"""Alembic environment: runs on the connection ``control_plane.store.migrations`` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import control_plane.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from control_plane.store.db import create_db_engine

config = context.config
connection = config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(
        connection=conn,  # type: ignore[arg-type]
        target_metadata=SQLModel.metadata,
        # SQLite cannot ALTER most things: later migrations copy-and-move tables in batch mode.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # the `alembic` command line with sqlalchemy.url set
    engine = create_db_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
