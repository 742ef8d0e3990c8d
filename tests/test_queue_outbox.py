"""The outbox of queued runs, on SQLite and PostgreSQL with the real Redis: a run a server
stored ``queued`` but died before putting on the queue is queued by the next sweep and runs
exactly once; a run that was queued is marked so and never queued twice by the sweep.

The crash is reproduced by what it leaves behind: the run row a replica commits before it
queues (``service.start_run(status="queued")``), with no message on the stream.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from control_plane.kit.time import utcnow
from control_plane.queue import Consumer, Delivery
from control_plane.runs import planning, service
from control_plane.runs.execution import Runs
from control_plane.runs.schemas import RunRequest
from control_plane.store.db import session_scope
from control_plane.store.tables import RunRow
from tests.fixtures import GREET, REDIS_URL, app_client, app_state, seed_workflow
from tests.processes import free_port

BODY: dict[str, Any] = {"workflow": "greet", "input": {"prompt": "hi"}, "mode": "async"}


@pytest.fixture
def client(database_url: str, admin_key: str, redis_prefix: str) -> Any:
    with app_client(
        database_url,
        admin_key,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        queue_visibility_timeout_s=1.0,  # the sweep's grace before it queues a stranded run
    ) as client:
        seed_workflow(client, "greet", {"v1": GREET}, {"prod": "v1"})
        yield client


def _runs(client: TestClient) -> Runs:
    runs: Runs = app_state(client).runs
    return runs


def _stranded_run(client: TestClient) -> str:
    """What a replica killed between its commit and its enqueue leaves: a queued run, stored
    a while ago, with no message."""
    factory = app_state(client).session_factory
    run_id = "run-stranded-0001"
    with session_scope(factory) as session:
        plan = planning.plan_run(session, request=RunRequest.model_validate(BODY))
        service.start_run(
            session,
            plan=plan,
            run_id=run_id,
            inputs=BODY["input"],
            deadline_at=utcnow() + timedelta(hours=2),
            status="queued",
        )
    with session_scope(factory) as session:
        row = session.get(RunRow, run_id)
        assert row is not None
        row.created_at = utcnow() - timedelta(seconds=30)
    return run_id


def _row(client: TestClient, run_id: str) -> RunRow:
    with Session(app_state(client).db_engine) as session:
        row = session.get(RunRow, run_id)
        assert row is not None
        return row


async def _consume(runs: Runs, expected: int) -> list[str]:
    """Run a worker's consumer on the queue until ``expected`` deliveries were handled."""
    queued = runs.queued
    assert queued is not None
    seen: list[str] = []
    stop = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        await queued.execute(delivery)
        seen.append(delivery.run_id)
        if len(seen) >= expected:
            stop.set()

    consumer = Consumer(queued.queue, handle, consumer="outbox-test", block_ms=50)
    await asyncio.wait_for(consumer.run(stop), timeout=30)
    return seen


def test_a_stranded_queued_run_is_queued_by_the_sweep_and_runs_once(client: TestClient) -> None:
    run_id = _stranded_run(client)
    runs = _runs(client)
    assert _row(client, run_id).enqueued_at is None
    client.portal.call(runs.sweep)  # type: ignore[union-attr]
    assert _row(client, run_id).enqueued_at is not None
    client.portal.call(runs.sweep)  # type: ignore[union-attr]  # marked: not queued again
    seen = client.portal.call(_consume, runs, 1)  # type: ignore[union-attr]
    assert seen == [run_id]
    done = client.get(f"/v1/runs/{run_id}").json()
    assert (done["status"], done["attempt"]) == ("succeeded", 1)
    queued = runs.queued
    assert queued is not None
    stats = client.portal.call(queued.queue.stats)  # type: ignore[union-attr]
    # Nothing waits or is pending: the second sweep queued no duplicate of the marked run.
    assert (stats.length, stats.pending) == (0, 0)


def test_a_run_queued_as_usual_is_marked_and_not_queued_again(client: TestClient) -> None:
    accepted = client.post("/v1/run", json=BODY)
    assert accepted.status_code == 202, accepted.json()
    run_id = accepted.json()["run_id"]
    runs = _runs(client)
    deadline = asyncio.run(_wait_marked(client, run_id))
    assert deadline is not None
    with session_scope(app_state(client).session_factory) as session:
        row = session.get(RunRow, run_id)
        assert row is not None
        row.created_at = utcnow() - timedelta(seconds=30)  # long past the sweep's grace
    client.portal.call(runs.sweep)  # type: ignore[union-attr]
    queued = runs.queued
    assert queued is not None
    stats = client.portal.call(queued.queue.stats)  # type: ignore[union-attr]
    assert stats.length == 1  # the submission's own message only


async def _wait_marked(client: TestClient, run_id: str) -> object:
    for _ in range(100):
        marked = _row(client, run_id).enqueued_at
        if marked is not None:
            return marked
        await asyncio.sleep(0.05)
    return None


def test_a_submission_the_queue_refuses_leaves_no_run_and_no_count(
    database_url: str, admin_key: str, redis_prefix: str
) -> None:
    with app_client(
        database_url,
        admin_key,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: Redis is away
        redis_prefix=redis_prefix,
    ) as client:
        seed_workflow(client, "greet", {"v1": GREET}, {"prod": "v1"})
        # The breaker closed, as when Redis answered a moment ago: the submission is stored
        # and Redis goes away before its message is queued.
        link = app_state(client).redis
        link._down = False
        refused = client.post("/v1/run", json=BODY, headers={"Idempotency-Key": "k1"})
        assert refused.status_code == 503, refused.json()
        assert refused.json()["error"]["code"] == "redis_unavailable"
        assert client.get("/v1/runs").json() == []  # the 503 left no failed run behind
        metrics = client.get("/metrics").text
        assert "rollgraph_runs_total{" not in metrics.replace("# HELP rollgraph_runs_total", "")
        assert "rollgraph_assignments_total{" not in metrics
