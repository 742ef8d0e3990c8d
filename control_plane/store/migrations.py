"""Alembic, configured in code: no ``alembic.ini`` to ship, find or keep in sync.

The scripts live in ``control_plane/store/alembic`` (``env.py`` and ``versions/``); the server calls
``upgrade_to_head`` on start, and applying it to an up-to-date database is a no-op.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Engine

from control_plane.store.db import create_db_engine

__all__ = [
    "SCRIPT_LOCATION",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
    "upgrade_to_head",
]

SCRIPT_LOCATION: Final = Path(__file__).resolve().parent / "alembic"
_LOCK_KEY: Final = 0x726F6C6C67  # "rollg": the advisory lock that serialises migrations


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_to_head(target: Engine | str | URL) -> None:
    """Bring the database to the newest schema. Takes an engine (tests, the server) or a URL
    (the CLI), and runs in one transaction where the database allows DDL in transactions."""
    migrate(target, "head")


def migrate(target: Engine | str | URL, revision: str) -> None:
    """Upgrade or downgrade the database to ``revision`` ("head", "0005", ...)."""
    engine = target if isinstance(target, Engine) else create_db_engine(target)
    try:
        with _exclusive(engine), engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations copy a table, drop it and rename the copy; with foreign keys
                # enforced the drop would fail for rows that reference it. SQLite only switches
                # enforcement outside a transaction, and checks the result afterwards.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    if not sqlite:
                        # Worker processes start together: one migrates, the others wait here
                        # and then find the schema current (released at commit).
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
                        )
                    config = alembic_config()
                    # env.py uses this connection instead of opening its own from a URL.
                    config.attributes["connection"] = connection
                    current = MigrationContext.configure(connection).get_current_revision()
                    # Revisions are numbered in order ("0001", "0002", ...): older is smaller.
                    if revision != "head" and current is not None and revision < current:
                        command.downgrade(config, revision)
                    else:
                        command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    connection.commit()
                    if broken:
                        raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
    finally:
        if engine is not target:
            engine.dispose()


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """On a SQLite file, one migrating process at a time: a lock file next to the database
    (SQLite takes its write lock only at the first write, after alembic read the version)."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:") or "mode=memory" in database:
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
