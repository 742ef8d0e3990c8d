"""Back-pressure on the run queue, on SQLite and PostgreSQL with the real Redis: past the
configured depth or wait, an async submission gets 429 ``queue_full`` with ``Retry-After`` and
nothing is stored; ``GET /v1/queue`` reports the depth and the wait it is decided on.

The backlog is made the way it exists in production: entries on the stream that no worker has
taken (no worker runs here). An entry's id carries the milliseconds it was queued at, so an old
backlog is an entry added with an old id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from control_plane.queue.pressure import FRESH_S, refusal
from control_plane.queue.streams import QueueStats
from tests.fixtures import GREET, REDIS_URL, app_client, seed_workflow

BODY: dict[str, Any] = {"workflow": "greet", "input": {"prompt": "hi"}, "mode": "async"}
MAX_DEPTH = 3
MAX_WAIT_S = 120.0


@pytest.fixture
def backlog(redis_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def client(database_url: str, admin_key: str, redis_prefix: str) -> Iterator[TestClient]:
    with app_client(
        database_url,
        admin_key,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        queue_max_depth=MAX_DEPTH,
        queue_max_wait_s=MAX_WAIT_S,
    ) as client:
        seed_workflow(client, "greet", {"v1": GREET}, {"prod": "v1"})
        yield client


def _queue(client: TestClient) -> dict[str, Any]:
    response = client.get("/v1/queue")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_queue_at_its_depth_refuses_async_runs_and_stores_nothing(
    client: TestClient, backlog: redis.Redis, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:runs"
    for i in range(MAX_DEPTH):
        backlog.xadd(stream, {"run_id": f"waiting-{i}"})
    status = _queue(client)
    assert status["waiting"] == MAX_DEPTH and status["accepting"] is False
    assert status["max_depth"] == MAX_DEPTH and status["max_wait_s"] == MAX_WAIT_S

    refused = client.post("/v1/run", json=BODY, headers={"Idempotency-Key": "k1"})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "queue_full"
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/v1/runs").json() == []  # nothing stored
    assert backlog.xlen(stream) == MAX_DEPTH  # nothing queued
    # Sync runs do not go through the queue: still served.
    assert client.post("/v1/run", json={**BODY, "mode": "sync"}).status_code == 200

    backlog.delete(stream)  # the workers caught up
    time.sleep(FRESH_S * 2)  # past the reading the refusal was decided on
    assert _queue(client)["accepting"] is True
    # The key of the refused request is free: the retry runs.
    accepted = client.post("/v1/run", json=BODY, headers={"Idempotency-Key": "k1"})
    assert accepted.status_code == 202, accepted.text
    assert _queue(client)["waiting"] == 1


def test_a_queue_whose_oldest_run_waited_too_long_refuses_async_runs(
    client: TestClient, backlog: redis.Redis, redis_prefix: str
) -> None:
    queued_ms = int(backlog.time()[0]) * 1000 - 300_000  # queued 5 minutes ago, by Redis's clock
    backlog.xadd(f"{redis_prefix}:runs", {"run_id": "old"}, id=f"{queued_ms}-0")
    status = _queue(client)
    assert status["waiting"] == 1 and status["oldest_wait_s"] >= 300
    assert status["accepting"] is False

    refused = client.post("/v1/run", json=BODY)
    assert refused.status_code == 429, refused.text
    body = refused.json()["error"]
    assert body["code"] == "queue_full" and "waited" in body["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/v1/runs").json() == []


def test_an_empty_queue_reports_no_wait(client: TestClient) -> None:
    status = _queue(client)
    assert status["waiting"] == 0 and status["oldest_wait_s"] == 0 and status["accepting"]


@pytest.mark.parametrize(
    ("stats", "refused"),
    [
        (QueueStats(length=0, pending=0, dead=0), False),
        (QueueStats(length=9, pending=7, dead=0, waiting=2, oldest_wait_s=5.0), False),
        (QueueStats(length=3, pending=0, dead=0, waiting=3, oldest_wait_s=5.0), True),
        (QueueStats(length=1, pending=0, dead=0, waiting=1, oldest_wait_s=121.0), True),
        # Pending runs are with a worker already: they are not the backlog.
        (QueueStats(length=50, pending=50, dead=0, waiting=0, oldest_wait_s=0.0), False),
    ],
)
def test_refusal_counts_only_runs_no_worker_took(stats: QueueStats, refused: bool) -> None:
    decided = refusal(stats, max_depth=MAX_DEPTH, max_wait_s=MAX_WAIT_S)
    assert (decided is not None) is refused
    if decided is not None:
        assert 1 <= decided.retry_after_s <= 60 and decided.status_code == 429


def test_zero_turns_the_limits_off() -> None:
    stats = QueueStats(length=10**6, pending=0, dead=0, waiting=10**6, oldest_wait_s=10**5)
    assert refusal(stats, max_depth=0, max_wait_s=0) is None
