"""Shadow runs on SQLite and PostgreSQL, in-process and through the Redis run queue: the served
version answers, the shadow candidate runs a copy of the inputs afterwards and its output never
reaches the caller; shadow runs are stored and traced, marked with the run they mirror, counted
in their own metrics, excluded from experiment statistics; mirrors dropped when the queue is
full or the hourly cost cap is reached are counted, and the served request is never touched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, col, select

from control_plane.queue import Consumer, Delivery
from control_plane.rollouts.shadowing import shadow_bucket_of
from control_plane.runs import planning
from control_plane.runs.execution import Runs
from control_plane.runs.schemas import RunPublic, RunRequest
from control_plane.store.db import create_db_engine
from control_plane.store.tables import ArmUnitStatRow, RunRow, RunTraceRow
from tests.fixtures import GREET, GREET_LARGE, REDIS_URL, app_client, app_state, seed_workflow

V3 = GREET.replace("prompt.enhance", "llm.generate")
SHADOW = "/v1/workflows/greet/labels/prod/shadow"
USERS = [f"user-{i}" for i in range(40)]


def start(client: TestClient, version: str = "v2", percent: float = 100, cap: float = 100) -> str:
    body = {"version": version, "percent": percent, "max_cost_usd_per_hour": cap}
    response = client.put(SHADOW, json=body)
    assert response.status_code == 200, response.text
    salt: str = response.json()["salt"]
    return salt


def serve(client: TestClient, user: str, **extra: Any) -> dict[str, Any]:
    body = {"workflow": "greet", "input": {"prompt": f"hello {user}"}, "user_id": user, **extra}
    response = client.post("/v1/run", json=body)
    assert response.status_code in (200, 202), response.text
    run: dict[str, Any] = response.json()
    return run


def runs_of(client: TestClient) -> Runs:
    runs = app_state(client).runs
    assert isinstance(runs, Runs)
    return runs


def drain(client: TestClient) -> None:
    """Wait until every mirrored request was run or dropped (no clock involved)."""
    portal = client.portal
    assert portal is not None
    portal.call(runs_of(client).shadows.drain)


def stored(database_url: str) -> list[RunRow]:
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            return list(session.exec(select(RunRow).order_by(col(RunRow.created_at))).all())
    finally:
        db.dispose()


def metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(params=["in-process", "redis"])
def client(
    request: pytest.FixtureRequest, database_url: str, admin_key: str
) -> Iterator[TestClient]:
    settings: dict[str, Any] = {}
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        settings = {"redis_url": REDIS_URL, "redis_prefix": prefix}
    with app_client(database_url, admin_key, **settings) as api:
        seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE, "v3": V3}, {"prod": "v1"})
        yield api


async def _consume(runs: Runs, expected: int) -> None:
    """A worker's consumer on the Redis run queue until ``expected`` runs were handled."""
    queued = runs.queued
    assert queued is not None
    seen: list[str] = []
    stop = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        await queued.execute(delivery)
        seen.append(delivery.run_id)
        if len(seen) >= expected:
            stop.set()

    consumer = Consumer(queued.queue, handle, consumer="shadow-test", block_ms=50)
    await asyncio.wait_for(consumer.run(stop), timeout=60)


def settle(client: TestClient, shadows: int) -> None:
    """Every mirror run or dropped; with Redis, the queued shadow runs run by a worker."""
    drain(client)
    runs = runs_of(client)
    if runs.queued is not None and shadows:
        portal = client.portal
        assert portal is not None
        portal.call(_consume, runs, shadows)


def test_the_caller_gets_the_served_run_and_the_shadow_runs_a_copy_afterwards(
    client: TestClient, database_url: str
) -> None:
    start(client, "v2")
    answers = [serve(client, user) for user in USERS[:10]]
    settle(client, 10)
    rows = stored(database_url)
    served = {r.id: r for r in rows if r.shadow_of is None}
    shadows = [r for r in rows if r.shadow_of is not None]
    assert len(served) == 10 and len(shadows) == 10
    for answer in answers:
        # The caller's answer is the served run, word for word: no shadow field, version or output.
        assert (answer["version"], answer["shadow_of"], answer["reason"]) == ("v1", None, "label")
        assert answer["outputs"] == served[answer["run_id"]].outputs
    by_served = {s.shadow_of: s for s in shadows}
    assert set(by_served) == set(served)
    for run_id, row in served.items():
        shadow = by_served[run_id]
        assert (shadow.version, shadow.reason, shadow.label) == ("v2", "shadow", "prod")
        assert (shadow.user_id, shadow.input) == (row.user_id, row.input)
        assert shadow.status == "succeeded" and shadow.experiment_id is None
        assert shadow.outputs != row.outputs  # another model wrote it, and nobody got it
        detail = client.get(f"/v1/runs/{shadow.id}").json()  # stored and traced like any run
        assert detail["shadow_of"] == run_id and detail["steps"]
    # In their own metrics, never in the served runs'.
    assert metric(client, "rollgraph_shadow_runs_total", version="v2", status="succeeded") == 10
    assert metric(client, "rollgraph_runs_total", version="v2") == 0
    assert metric(client, "rollgraph_assignments_total", version="v2") == 0
    assert metric(client, "rollgraph_runs_total", version="v1") == 10


def test_shadowed_users_are_sticky_under_the_shadows_own_salt(
    client: TestClient, database_url: str
) -> None:
    # A rollout on the same label: the shadow's users do not follow its buckets.
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v3", "percent": 50})
    salt = start(client, "v2", percent=30)
    for user in USERS:
        serve(client, user)
    expected = {u for u in USERS if shadow_bucket_of(salt, u) < 3_000}
    settle(client, len(expected))
    mirrored = {r.user_id for r in stored(database_url) if r.shadow_of is not None}
    assert mirrored == expected and 0 < len(expected) < len(USERS)
    served_versions = {r.version for r in stored(database_url) if r.shadow_of is None}
    assert served_versions == {"v1", "v3"}  # both arms of the rollout are mirrored


def test_an_async_served_run_is_mirrored_too(client: TestClient, database_url: str) -> None:
    start(client, "v2")
    accepted = serve(client, "async-user", mode="async")
    runs = runs_of(client)
    settle(client, 2 if runs.queued is not None else 1)  # with Redis: the served run, too
    rows = stored(database_url)
    [shadow] = [r for r in rows if r.shadow_of is not None]
    assert shadow.shadow_of == accepted["run_id"] and shadow.version == "v2"


def test_a_full_queue_drops_mirrors_counted_never_the_served_request(
    database_url: str, admin_key: str
) -> None:
    with app_client(database_url, admin_key, shadow_queue_size=2, shadow_workers=1) as client:
        seed_workflow(client, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
        start(client, "v2")
        runs = runs_of(client)
        answer = serve(client, "u-0")
        drain(client)
        request = RunRequest(workflow="greet", input={"prompt": "hi"}, user_id="u-1")
        portal = client.portal
        assert portal is not None
        cache = app_state(client).registry_cache
        plan = portal.call(partial(planning.plan, cache, request=request))
        served = client.get(f"/v1/runs/{answer['run_id']}").json()
        public = RunPublic.model_validate(served)

        def burst() -> None:
            # Five mirrors in one turn of the event loop: the workers cannot take any between.
            for _ in range(5):
                runs.shadows.offer(plan, request.input, served=public)

        portal.call(lambda: _sync(burst))
        drain(client)
        assert metric(client, "rollgraph_shadow_dropped_total", reason="queue_full") == 3
        shadows = [r for r in stored(database_url) if r.shadow_of is not None]
        assert len(shadows) == 1 + 2
        assert serve(client, "u-2")["status"] == "succeeded"  # serving goes on


async def _sync(work: Any) -> None:
    work()


def test_the_hourly_cost_cap_drops_mirrors_counted(client: TestClient, database_url: str) -> None:
    start(client, "v2", cap=1.0)
    # What the label's shadow runs spent in the last hour: already past the cap.
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            session.add(
                RunRow(id="spent-1", workflow="greet", version="v2", label="prod",
                       status="succeeded", reason="shadow", shadow_of="earlier", cost_usd=1.5)
            )  # fmt: skip
            session.commit()
    finally:
        db.dispose()
    for user in USERS[:4]:
        assert serve(client, user)["status"] == "succeeded"
    settle(client, 0)
    assert metric(client, "rollgraph_shadow_dropped_total", reason="cost_cap") == 4
    assert [r.id for r in stored(database_url) if r.shadow_of is not None] == ["spent-1"]
    assert client.get(SHADOW).json()["cost_usd_last_hour"] == 1.5


def test_experiment_statistics_exclude_shadow_runs(client: TestClient, database_url: str) -> None:
    started = client.post(
        "/v1/experiments",
        json={
            "workflow": "greet",
            "candidates": [{"version": "v2", "percent": 50}],
            "primary": {"name": "latency_s", "kind": "mean", "direction": "decrease", "mde": 0.1},
        },
    )
    assert started.status_code == 201, started.text
    experiment = started.json()["id"]
    start(client, "v3")
    for user in USERS[:12]:
        serve(client, user)
        serve(client, user)
    settle(client, 24)
    rows = stored(database_url)
    served = [r for r in rows if r.shadow_of is None]
    assert len([r for r in rows if r.shadow_of is not None]) == 24  # shadow runs exist
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            stats = session.exec(
                select(ArmUnitStatRow).where(ArmUnitStatRow.experiment_id == experiment)
            ).all()
            traces = session.exec(select(RunTraceRow)).all()
    finally:
        db.dispose()
    assert len(traces) == len(rows)
    for stat in stats:
        # Exactly what the served runs of the arm give: users, runs and the metric's sum.
        arm = [r for r in served if r.arm == stat.arm]
        assert stat.units == len({r.user_id for r in arm})
        assert stat.sum_n == len(arm)
        values = {
            "success": [1.0 if r.status == "succeeded" else 0.0 for r in arm],
            "cost_usd": [r.cost_usd for r in arm],
            "latency_s": [r.latency_s or 0.0 for r in arm],
        }[stat.metric]
        assert stat.sum_s == pytest.approx(sum(values))
    assert {s.arm for s in stats} <= {"v1", "v2"} and stats


def test_a_candidate_taking_other_inputs_is_dropped_counted(
    client: TestClient, database_url: str
) -> None:
    other = GREET.replace("prompt: text", "topic: text").replace("inputs.prompt", "inputs.topic")
    created = client.post("/v1/workflows", json={"source": other, "version": "v4"})
    assert created.status_code == 201, created.text
    start(client, "v4")
    for user in USERS[:3]:
        assert serve(client, user)["status"] == "succeeded"
    settle(client, 0)
    assert metric(client, "rollgraph_shadow_dropped_total", reason="input_mismatch") == 3
    assert [r for r in stored(database_url) if r.shadow_of is not None] == []


def test_a_full_redis_run_queue_drops_mirrors_counted(
    database_url: str, admin_key: str, redis_prefix: str
) -> None:
    backlog = redis.Redis.from_url(REDIS_URL)
    try:
        for i in range(3):  # the queue at its depth before anything reads it
            backlog.xadd(f"{redis_prefix}:runs", {"run_id": f"waiting-{i}"})
        with app_client(
            database_url,
            admin_key,
            redis_url=REDIS_URL,
            redis_prefix=redis_prefix,
            queue_max_depth=3,
        ) as client:
            seed_workflow(client, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
            start(client, "v2")
            for user in USERS[:4]:
                assert serve(client, user)["status"] == "succeeded"  # sync: no queue involved
            drain(client)
            assert metric(client, "rollgraph_shadow_dropped_total", reason="queue_full") == 4
            assert [r for r in stored(database_url) if r.shadow_of is not None] == []
        assert backlog.xlen(f"{redis_prefix}:runs") == 3  # nothing queued
    finally:
        backlog.close()
