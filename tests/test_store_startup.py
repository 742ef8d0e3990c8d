"""``store.startup.wait_for_store``: a process that starts while its database is away retries
the migrations until the store answers, and gives up with the store's own error once its wait
is over (a wrong URL must still fail the start). The end-to-end case, a real worker started
while a real PostgreSQL is stopped, is in ``tests/test_faults_postgres.py``."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc as sa_exc

from control_plane.store.db import create_db_engine
from control_plane.store.migrations import upgrade_to_head
from control_plane.store.startup import wait_for_store
from tests.processes import free_port


def test_a_store_that_never_answers_fails_the_start_with_its_error_once_the_wait_is_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = create_db_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    try:
        with pytest.raises(sa_exc.OperationalError, match="refused"):
            asyncio.run(wait_for_store(db, upgrade_to_head, within_s=0.5))
        assert (
            "waiting for it up to 0 s" in caplog.text or "waiting for it up to 1 s" in caplog.text
        )
        with pytest.raises(sa_exc.OperationalError):
            asyncio.run(wait_for_store(db, upgrade_to_head, within_s=0))
    finally:
        db.dispose()


def test_the_store_answering_on_a_later_attempt_starts_the_process(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    away = create_db_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    here = create_db_engine(database_url)
    calls: list[str] = []

    def migrate_when_back(db: object) -> None:
        # the first two attempts meet a store that refuses connections, then it is back
        calls.append("try")
        upgrade_to_head(away if len(calls) <= 2 else here)

    try:
        asyncio.run(wait_for_store(here, migrate_when_back, within_s=30))
    finally:
        away.dispose()
        here.dispose()
    assert len(calls) == 3
    assert "the store is back after 3 attempt(s)" in caplog.text
