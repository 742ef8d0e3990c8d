"""Async runs, resume from the step cache, batched writes, interrupted runs and expired
idempotency claims, on SQLite and PostgreSQL.

The graph uses two plug-in kinds registered for the test (the engine's extension point, not a
stand-in for our code): ``test.paid`` bills 0.01 per call and counts its calls; ``test.gate``
fails until the test opens it, or waits until the test releases it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select

import engine
from control_plane.kit.time import utcnow
from control_plane.runs import service
from control_plane.runs.execution import Runs
from control_plane.store.db import create_db_engine, make_session_factory, session_scope
from control_plane.store.tables import IdempotencyKeyRow, RunRow, RunStepRow
from tests.fixtures import app_client, app_state, apply, set_label

SOURCE = """
name: billing
inputs:
  topic: text
nodes:
  draft:
    uses: test.paid
    with: {x: "${inputs.topic}"}
  check:
    uses: test.gate
    with: {x: "${draft.out}"}
  final:
    uses: test.paid
    with: {x: "${check.out}"}
outputs:
  result: "${final.out}"
"""
BODY: dict[str, Any] = {"workflow": "billing", "input": {"topic": "shoes"}}


class Gate:
    """What ``test.gate`` does: fail while closed; wait while held."""

    def __init__(self) -> None:
        self.open = False
        self.held = threading.Event()
        self.held.set()
        self.calls: dict[str, int] = {"test.paid": 0, "test.gate": 0}


def node_kinds(gate: Gate) -> engine.NodeKinds:
    reg = engine.default_kinds.copy()

    @engine.node_kind("test.paid", inputs={"x": "json"}, outputs={"out": "json"}, kinds=reg)
    async def paid(ctx: engine.NodeContext, params: dict[str, Any]) -> engine.NodeResult:
        gate.calls["test.paid"] += 1
        return engine.NodeResult({"out": f"paid({params['x']})"}, cost_usd=0.01)

    @engine.node_kind("test.gate", inputs={"x": "json"}, outputs={"out": "json"}, kinds=reg)
    async def gated(ctx: engine.NodeContext, params: dict[str, Any]) -> dict[str, Any]:
        gate.calls["test.gate"] += 1
        await asyncio.to_thread(gate.held.wait, 10)  # set from the test's thread
        if not gate.open:
            raise engine.NodeError("the gate is closed", retryable=False)
        return {"out": f"checked({params['x']})"}

    return reg


@contextmanager
def gated_client(
    database_url: str, admin_key: str, gate: Gate, *, seed: bool = True, **settings: Any
) -> Iterator[TestClient]:
    """An app whose engine has the test's kinds; ``seed``: billing v1, prod on v1."""

    def run_engine() -> engine.Engine:
        return engine.Engine(kinds=node_kinds(gate))

    with app_client(database_url, admin_key, run_engine=run_engine, **settings) as client:
        if seed:
            apply(client, SOURCE)  # v1
            set_label(client, "billing", "prod", "v1")
        yield client


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def client(database_url: str, admin_key: str, gate: Gate) -> Iterator[TestClient]:
    with gated_client(database_url, admin_key, gate) as client:
        yield client


def wait_for(client: TestClient, run_id: str, status: str) -> dict[str, Any]:
    for _ in range(500):
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] == status:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not become {status}: {run}")


def steps_of(database_url: str, run_id: str) -> list[str]:
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            rows = session.exec(select(RunStepRow).where(RunStepRow.run_id == run_id)).all()
            return sorted(r.key for r in rows)
    finally:
        db.dispose()


# -- async -------------------------------------------------------------------------------------
def test_async_answers_202_at_once_and_the_run_is_read_later(
    client: TestClient, gate: Gate
) -> None:
    gate.open = True
    gate.held.clear()  # the run cannot finish before the 202
    response = client.post("/v1/run", json={**BODY, "mode": "async"})
    assert response.status_code == 202, response.json()
    accepted = response.json()
    assert (accepted["status"], accepted["mode"], accepted["finished_at"]) == (
        "running",
        "async",
        None,
    )
    assert response.headers["location"] == f"/v1/runs/{accepted['run_id']}"
    running = client.get(response.headers["location"]).json()
    assert running["status"] == "running"  # its steps so far: test_runs_progress
    assert (
        client.get("/v1/runs", params={"status": "running"}).json()[0]["run_id"]
        == (accepted["run_id"])
    )
    gate.held.set()
    done = wait_for(client, accepted["run_id"], "succeeded")
    assert done["outputs"] == {"result": "paid(checked(paid(shoes)))"}
    assert done["cost_usd"] == pytest.approx(0.02)
    assert {s["node"] for s in done["trace"]["steps"]} == {"draft", "check", "final"}
    assert client.get("/v1/runs", params={"mode": "async"}).json()[0]["status"] == "succeeded"


def test_async_input_errors_are_a_422_before_anything_is_stored(client: TestClient) -> None:
    response = client.post("/v1/run", json={**BODY, "input": {}, "mode": "async"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
    assert client.get("/v1/runs").json() == []


def test_async_with_an_idempotency_key_replays_the_202(client: TestClient, gate: Gate) -> None:
    gate.open = True
    headers = {"Idempotency-Key": "async-1"}
    first = client.post("/v1/run", json={**BODY, "mode": "async"}, headers=headers)
    again = client.post("/v1/run", json={**BODY, "mode": "async"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["run_id"] == first.json()["run_id"]
    wait_for(client, first.json()["run_id"], "succeeded")
    assert len(client.get("/v1/runs").json()) == 1
    assert gate.calls["test.paid"] == 2


# -- resume ------------------------------------------------------------------------------------
def test_a_failed_sync_run_resumes_without_rerunning_or_rebilling_completed_steps(
    client: TestClient, gate: Gate, database_url: str
) -> None:
    failed = client.post("/v1/run", json=BODY).json()
    assert failed["status"] == "failed" and "gate is closed" in failed["error"]
    assert failed["cost_usd"] == pytest.approx(0.01)  # draft ran and was billed
    assert len(steps_of(database_url, failed["run_id"])) == 1  # kept for a resume
    assert gate.calls == {"test.paid": 1, "test.gate": 1}

    gate.open = True
    response = client.post(f"/v1/runs/{failed['run_id']}/resume")
    assert response.status_code == 200, response.json()
    resumed = response.json()
    assert (resumed["run_id"], resumed["status"], resumed["attempt"]) == (
        failed["run_id"],
        "succeeded",
        2,
    )
    assert gate.calls == {"test.paid": 2, "test.gate": 2}  # draft did not run again
    assert resumed["cost_usd"] == pytest.approx(0.02)  # draft billed once, final once
    trace = client.get(f"/v1/runs/{failed['run_id']}").json()["trace"]
    draft = next(s for s in trace["steps"] if s["node"] == "draft")
    assert draft["cache_hit"] is True
    assert draft["cost_saved_usd"] == pytest.approx(0.01)
    assert trace["resumed"] is True
    first = client.get(f"/v1/runs/{failed['run_id']}", params={"attempt": 1}).json()["trace"]
    assert first["status"] == "failed"
    assert steps_of(database_url, failed["run_id"]) == []  # a succeeded run keeps none


def test_resume_refuses_what_cannot_be_resumed(client: TestClient, gate: Gate) -> None:
    assert client.post("/v1/runs/nope/resume").status_code == 404
    gate.open = True
    done = client.post("/v1/run", json=BODY).json()
    refused = client.post(f"/v1/runs/{done['run_id']}/resume")
    assert refused.status_code == 409
    assert "only a failed run" in refused.json()["error"]["message"]
    assert client.get(f"/v1/runs/{done['run_id']}", params={"attempt": 2}).status_code == 404

    gate.open = False
    failed = client.post("/v1/run", json=BODY).json()
    other = SOURCE.replace("final", "last")
    assert client.post("/v1/workflows", json={"source": other}).status_code == 201
    assert client.put("/v1/workflows/billing/labels/prod", json={"version": "v2"}).is_success
    archived = client.post("/v1/workflows/billing/versions/v1/archive")
    assert archived.status_code == 200
    refused = client.post(f"/v1/runs/{failed['run_id']}/resume")
    assert refused.status_code == 409 and "archived" in refused.json()["error"]["message"]
    assert client.get(f"/v1/runs/{failed['run_id']}").json()["status"] == "failed"


def test_async_resume_answers_202_and_finishes(client: TestClient, gate: Gate) -> None:
    failed = client.post("/v1/run", json=BODY).json()
    gate.open = True
    response = client.post(f"/v1/runs/{failed['run_id']}/resume", json={"mode": "async"})
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    done = wait_for(client, failed["run_id"], "succeeded")
    assert done["attempt"] == 2 and gate.calls["test.paid"] == 2


def test_two_resumes_at_once_run_once(client: TestClient, gate: Gate) -> None:
    failed = client.post("/v1/run", json=BODY).json()
    gate.open = True
    gate.held.clear()
    first = client.post(f"/v1/runs/{failed['run_id']}/resume", json={"mode": "async"})
    second = client.post(f"/v1/runs/{failed['run_id']}/resume")
    assert first.status_code == 202
    assert second.status_code == 409 and "still running" in second.json()["error"]["message"]
    gate.held.set()
    assert wait_for(client, failed["run_id"], "succeeded")["attempt"] == 2


# -- interruption ------------------------------------------------------------------------------
def test_an_async_run_stopped_by_shutdown_is_stored_interrupted_and_resumes(
    database_url: str, admin_key: str, gate: Gate
) -> None:
    gate.open = True
    gate.held.clear()  # the run is in `check` when the server stops
    with gated_client(database_url, admin_key, gate, shutdown_grace_s=0) as client:
        run_id = client.post("/v1/run", json={**BODY, "mode": "async"}).json()["run_id"]
        for _ in range(500):
            if gate.calls["test.gate"]:
                break
            time.sleep(0.01)
    gate.held.set()
    with gated_client(database_url, admin_key, gate, seed=False) as client:
        stopped = client.get(f"/v1/runs/{run_id}").json()
        assert stopped["status"] == "failed" and "interrupted" in stopped["error"]
        assert len(steps_of(database_url, run_id)) == 1  # draft, stored as it completed
        assert client.post(f"/v1/runs/{run_id}/resume").json()["status"] == "succeeded"
        assert gate.calls["test.paid"] == 2  # draft once, final once


def test_runs_left_running_by_a_dead_process_are_failed_by_the_sweep(
    client: TestClient, gate: Gate, database_url: str
) -> None:
    gate.open = True
    done = client.post("/v1/run", json=BODY).json()
    db = create_db_engine(database_url)
    factory = make_session_factory(db)
    try:
        with session_scope(factory) as session:  # as a process killed mid-run leaves it
            session.execute(
                update(RunRow)
                .where(RunRow.id == done["run_id"])
                .values(status="running", deadline_at=utcnow() - timedelta(seconds=1))
            )
        runs: Runs = app_state(client).runs
        assert client.portal.call(runs.sweep) == 1  # type: ignore[union-attr]
        swept = client.get(f"/v1/runs/{done['run_id']}").json()
        assert swept["status"] == "failed" and swept["error"] == service.INTERRUPTED
        with session_scope(factory) as session:  # not yet past its deadline: left alone
            session.execute(
                update(RunRow)
                .where(RunRow.id == done["run_id"])
                .values(status="running", deadline_at=utcnow() + timedelta(minutes=5))
            )
        assert client.portal.call(runs.sweep) == 0  # type: ignore[union-attr]
    finally:
        db.dispose()


def test_an_expired_idempotency_claim_is_taken_over(
    client: TestClient, gate: Gate, database_url: str
) -> None:
    gate.open = True
    headers = {"Idempotency-Key": "died-mid-run"}
    assert client.post("/v1/run", json=BODY, headers=headers).status_code == 200
    db = create_db_engine(database_url)
    factory = make_session_factory(db)
    try:
        with session_scope(factory) as session:  # a claim whose request died in flight
            session.execute(update(IdempotencyKeyRow).values(status="in_progress", response=None))
        # Not expired yet: the first request might still be running.
        assert client.post("/v1/run", json=BODY, headers=headers).status_code == 409
        with session_scope(factory) as session:
            session.execute(
                update(IdempotencyKeyRow).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        taken = client.post("/v1/run", json=BODY, headers=headers)
        assert taken.status_code == 200 and "idempotent-replayed" not in taken.headers
        replay = client.post("/v1/run", json=BODY, headers=headers)
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["run_id"] == taken.json()["run_id"]
    finally:
        db.dispose()


# -- batched writes ----------------------------------------------------------------------------
def test_concurrent_runs_share_transactions_and_every_answered_run_is_stored(
    client: TestClient, gate: Gate
) -> None:
    gate.open = True
    runs: Runs = app_state(client).runs
    before = (runs.writer.batches, runs.writer.units)

    async def many() -> list[str]:
        answers = await asyncio.gather(
            *(
                asyncio.to_thread(client.post, "/v1/run", json={**BODY, "user_id": f"u{i}"})
                for i in range(40)
            )
        )
        return [a.json()["run_id"] for a in answers if a.status_code == 200]

    answered = asyncio.run(many())
    assert len(answered) == 40
    stored = {r["run_id"] for r in client.get("/v1/runs", params={"limit": 1000}).json()}
    assert set(answered) <= stored
    batches, units = runs.writer.batches - before[0], runs.writer.units - before[1]
    assert units >= 40
    # A batch commits at least one unit, so ``batches <= units`` always holds; sharing means that
    # some transaction committed the units of several runs: fewer transactions than units.
    assert batches < units, (batches, units)
