"""A running attempt's step states, through the public API, on SQLite and PostgreSQL.

The run executes on one app (replica A); a second app on the same store (replica B), which
never saw the run, reads its per-node states while it runs: the store is the source of truth.
The graph is ``test_runs_async``'s: ``draft`` (billed) → ``check`` (held by the test) →
``final``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_plane.runs.progress import save_snapshot
from control_plane.runs.schemas import step_states
from control_plane.store.db import create_db_engine, make_session_factory, session_scope
from tests.fixtures import app_client
from tests.test_runs_async import BODY, Gate, gated_client, wait_for

FAST: dict[str, Any] = {"progress_interval_s": 0.02}


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def replicas(
    database_url: str, admin_key: str, gate: Gate
) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        gated_client(database_url, admin_key, gate, **FAST) as a,
        app_client(database_url, admin_key) as b,
    ):
        yield a, b


def until(
    client: TestClient, run_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    run: dict[str, Any] = {}
    for _ in range(500):
        run = client.get(f"/v1/runs/{run_id}").json()
        if done(run):
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never got there: {run}")


def states(run: dict[str, Any]) -> dict[str, str]:
    return {s["node"]: s["state"] for s in run["steps"]}


def test_another_replica_sees_each_node_while_the_run_executes(
    replicas: tuple[TestClient, TestClient], gate: Gate
) -> None:
    a, b = replicas
    gate.open = True
    gate.held.clear()  # `check` waits until the test releases it
    run_id = a.post("/v1/run", json={**BODY, "mode": "async"}).json()["run_id"]
    running = until(b, run_id, lambda r: states(r).get("check") == "running")
    assert running["status"] == "running" and running["trace_attempt"] == 1
    assert states(running) == {"draft": "succeeded", "check": "running", "final": "pending"}
    draft = running["steps"][0]
    assert (draft["attempts"], draft["cost_usd"]) == (1, pytest.approx(0.01))
    assert draft["started_at"] and draft["ended_at"]
    assert running["trace"]["status"] == "running"
    assert running["trace"]["cost_usd"] == pytest.approx(0.01)  # the cost so far
    gate.held.set()
    done = wait_for(b, run_id, "succeeded")
    # The final trace replaced the progress, on either replica.
    assert states(done) == dict.fromkeys(("draft", "check", "final"), "succeeded")
    assert done["trace"]["status"] == "succeeded"
    assert a.get(f"/v1/runs/{run_id}").json()["trace"] == done["trace"]


def test_a_resume_shows_its_own_attempt_with_completed_steps_cached(
    replicas: tuple[TestClient, TestClient], gate: Gate
) -> None:
    a, b = replicas
    failed = a.post("/v1/run", json=BODY).json()  # the gate is closed: `check` fails
    assert failed["status"] == "failed"
    gate.open = True
    gate.held.clear()
    assert a.post(f"/v1/runs/{failed['run_id']}/resume", json={"mode": "async"}).status_code == 202
    resuming = until(b, failed["run_id"], lambda r: states(r).get("check") == "running")
    # Attempt 2's steps, never attempt 1's failure: `draft` came from the step cache.
    assert (resuming["attempt"], resuming["trace_attempt"]) == (2, 2)
    assert states(resuming) == {"draft": "cached", "check": "running", "final": "pending"}
    assert resuming["steps"][0]["cost_usd"] == 0.0
    earlier = b.get(f"/v1/runs/{failed['run_id']}", params={"attempt": 1}).json()
    assert earlier["trace_attempt"] == 1 and states(earlier)["check"] == "failed"
    gate.held.set()
    done = wait_for(b, failed["run_id"], "succeeded")
    assert states(done) == {"draft": "cached", "check": "succeeded", "final": "succeeded"}


def test_a_snapshot_that_arrives_after_the_end_never_hides_the_final_trace(
    replicas: tuple[TestClient, TestClient], database_url: str, gate: Gate
) -> None:
    a, _ = replicas
    gate.open = True
    run_id = a.post("/v1/run", json={**BODY, "mode": "async"}).json()["run_id"]
    final = wait_for(a, run_id, "succeeded")["trace"]
    stale = {**final, "status": "running", "steps": []}
    db = create_db_engine(database_url)
    try:
        with session_scope(make_session_factory(db)) as session:
            assert save_snapshot(session, run_id=run_id, trace=stale) is False
            assert save_snapshot(session, run_id="no-such-run", trace=stale) is False
    finally:
        db.dispose()
    assert a.get(f"/v1/runs/{run_id}").json()["trace"] == final


def test_progress_turned_off_stores_nothing_until_the_end(
    database_url: str, admin_key: str, gate: Gate
) -> None:
    with gated_client(database_url, admin_key, gate, progress_interval_s=0) as client:
        gate.open = True
        gate.held.clear()
        run_id = client.post("/v1/run", json={**BODY, "mode": "async"}).json()["run_id"]
        time.sleep(0.2)
        running = client.get(f"/v1/runs/{run_id}").json()
        assert (running["status"], running["trace"], running["steps"]) == ("running", {}, [])
        assert running["trace_attempt"] is None
        gate.held.set()
        assert states(wait_for(client, run_id, "succeeded"))["final"] == "succeeded"


def test_an_attempt_its_process_never_finished_reads_as_cancelled_once_the_run_ended() -> None:
    snapshot = {
        "status": "running",
        "steps": [
            {"node": "a", "kind": "k", "status": "succeeded", "attempts": 1, "cost_usd": 0.5},
            {"node": "b", "kind": "k", "status": "running", "attempts": 2},
            {"node": "c", "kind": "k", "status": "pending", "attempts": 0},
            {"node": "d", "kind": "k", "status": "succeeded", "cache_hit": True},
        ],
    }
    live = [s.state for s in step_states(snapshot, ended=False)]
    assert live == ["succeeded", "running", "pending", "cached"]
    ended = [s.state for s in step_states(snapshot, ended=True)]
    assert ended == ["succeeded", "cancelled", "cancelled", "cached"]
    assert step_states({}, ended=True) == []
