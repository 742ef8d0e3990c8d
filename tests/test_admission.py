"""Admission control on SQLite and PostgreSQL, with real concurrency and the real store: while
the process's request units of work fill its bound (the pool's connections, held, plus the ones
allowed to wait for a connection), a request is answered 503 ``store_busy`` with ``Retry-After``
at once, not after the pool timeout (that would be ``store_unavailable``); once they finish, the
same request is served. Likewise, while the run writer's backlog is past its bound (its thread
held in a slow transaction), a new run is refused with ``store_busy`` and the writes already
queued are all committed.

The units that fill the bound are real: each opens its session, runs a query on its connection
and then holds it until the test lets go, as a slow query on a stalled store would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from control_plane.errors import StoreBusy
from control_plane.runs.writer import BatchWriter
from control_plane.settings import Settings
from control_plane.store.db import SessionFactory, UnitGate
from tests.fixtures import app_client, app_state
from tests.test_writer import Hold, committed, factory, insert

__all__ = ["factory"]  # the fixture, imported to be used here

POOL = 2
WAITING = 1


@pytest.fixture
def client(database_url: str, admin_key: str) -> Iterator[TestClient]:
    with app_client(
        database_url,
        admin_key,
        db_pool_size=POOL,
        db_max_waiting=WAITING,
        # Far longer than the test: a request that queued for a connection would show as a
        # wait of this long followed by `store_unavailable`, not as `store_busy`.
        db_pool_timeout_s=120,
    ) as client:
        yield client


def _fill(client: TestClient, gate: UnitGate, release: threading.Event) -> list[Future[int]]:
    """``gate.limit`` units in flight: ``POOL`` holding their connection, the rest waiting
    for one. Returns once the gate counts them all."""
    holding = threading.Semaphore(0)

    def hold(session: Session) -> int:
        value = int(session.execute(text("SELECT 1")).scalar_one())
        holding.release()
        release.wait(60)
        return value

    portal = client.portal
    assert portal is not None
    units = [portal.start_task_soon(gate, hold) for _ in range(gate.limit)]
    for _ in range(POOL):
        assert holding.acquire(timeout=30), "a unit did not get its connection"
    for _ in range(200):
        if portal.call(lambda: _in_flight(gate)) == gate.limit:
            break
        threading.Event().wait(0.01)
    assert portal.call(lambda: _in_flight(gate)) == gate.limit
    return units


async def _in_flight(gate: UnitGate) -> int:
    return gate.in_flight


def test_a_saturated_store_answers_503_store_busy_at_once(client: TestClient) -> None:
    gate: UnitGate = app_state(client).runs.units
    assert gate.limit == POOL + WAITING
    release = threading.Event()
    try:
        units = _fill(client, gate, release)
        for path in ("/v1/runs", "/v1/workflows"):
            busy = client.get(path)
            assert busy.status_code == 503, busy.text
            assert busy.json()["error"]["code"] == "store_busy"
            assert int(busy.headers["Retry-After"]) >= 1
    finally:
        release.set()
    assert [unit.result(timeout=30) for unit in units] == [1] * gate.limit
    assert client.get("/v1/runs").status_code == 200
    assert gate.in_flight == 0


def test_units_up_to_the_bound_are_all_served(client: TestClient) -> None:
    gate: UnitGate = app_state(client).runs.units
    release = threading.Event()
    release.set()  # each unit returns as soon as it ran its query
    portal = client.portal
    assert portal is not None

    def query(session: Session) -> int:
        return int(session.execute(text("SELECT 1")).scalar_one())

    for _ in range(20):
        units = [portal.start_task_soon(gate, query) for _ in range(gate.limit)]
        assert [u.result(timeout=30) for u in units] == [1] * gate.limit


@pytest.mark.parametrize(
    ("settings", "limit"),
    [
        ({"db_pool_size": 15}, 60),  # unset: three times as many waiting as connections
        ({"db_pool_size": 4, "db_max_waiting": 0}, 4),
        ({"db_pool_size": 4, "db_max_waiting": 100}, 104),
    ],
)
def test_the_bound_is_derived_from_the_pool_settings(settings: dict[str, Any], limit: int) -> None:
    assert Settings(**settings).db_admission_limit == limit


def test_a_writer_that_is_not_keeping_up_refuses_new_runs(
    factory: SessionFactory, empty_engine: Engine
) -> None:
    writer = BatchWriter(factory, max_backlog=3)
    held = Hold()
    try:
        first = held.hold(writer)  # the writer thread is inside a slow transaction
        queued = [writer.post(insert(i)) for i in range(1, 4)]
        assert writer.backlog == 3
        with pytest.raises(StoreBusy) as refused:
            writer.admit()
        assert refused.value.status_code == 503 and refused.value.code == "store_busy"
        held.release()
        assert [f.result(30) for f in queued] == [1, 2, 3]  # accepted work is written
        assert first.result(30) == "held"
        writer.admit()  # caught up: new work is admitted again
        assert committed(empty_engine) == {0: "held", 1: "", 2: "", 3: ""}
    finally:
        held.release()
        writer.close()


def test_a_run_submitted_while_the_writer_lags_gets_503_store_busy(client: TestClient) -> None:
    writer: BatchWriter = app_state(client).runs.writer
    release = threading.Event()

    def slow(session: Session) -> None:
        release.wait(60)

    try:
        # The writer thread takes one batch (up to 256 units) and is held in its first unit:
        # what is posted beyond that batch is the backlog.
        blocked = [writer.post(slow) for _ in range(writer.max_backlog + 256 + 1)]
        for _ in range(200):
            if writer.backlog >= writer.max_backlog:
                break
            threading.Event().wait(0.01)
        refused = client.post("/v1/run", json={"workflow": "nothing", "input": {}})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "store_busy"
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        release.set()
    for future in blocked:
        future.result(60)
    assert client.post("/v1/run", json={"workflow": "nothing", "input": {}}).status_code == 404
