"""Admission control on SQLite and PostgreSQL, with real concurrency and the real store: while
the process's request units of work fill its bound (the pool's connections, held, plus the ones
allowed to wait for a connection), a request is answered 503 ``store_busy`` with ``Retry-After``
at once, not after the pool timeout (that would be ``store_unavailable``); once they finish, the
same request is served.

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
from sqlmodel import Session

from control_plane.settings import Settings
from control_plane.store.db import UnitGate
from tests.fixtures import app_client, app_state

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
        ({"db_pool_size": 15}, 30),  # unset: as many waiting as the pool has connections
        ({"db_pool_size": 4, "db_max_waiting": 0}, 4),
        ({"db_pool_size": 4, "db_max_waiting": 100}, 104),
    ],
)
def test_the_bound_is_derived_from_the_pool_settings(settings: dict[str, Any], limit: int) -> None:
    assert Settings(**settings).db_admission_limit == limit
