"""``GET /v1/runs/{id}/events`` against real servers, on SQLite and PostgreSQL, with and without
Redis: events in order ending with ``end``, a reconnect with ``Last-Event-ID`` that repeats
nothing, access, and a replica that does not execute the run streaming it.

The graph is ``test_runs_async``'s (``draft`` billed, ``check`` held by the test, ``final``
billed). Each run first fails at ``check`` (the gate closed), then is resumed asynchronously
with the gate held: a resume runs in the process that takes it, with or without Redis (an
async *run* would go to the workers' queue with Redis), so the test decides which replica
executes it and when ``check`` ends.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import engine
from control_plane.settings import Settings
from tests import readme, sse
from tests.fixtures import REDIS_URL, bearer, new_key
from tests.sse import Event, Served, events, served
from tests.test_runs_async import BODY, Gate, gated_client, node_kinds

FAST: dict[str, Any] = {"progress_interval_s": 0.02, "experiment_eval_s": 3600}


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture(params=["polling", "redis"])
def notify(request: pytest.FixtureRequest) -> dict[str, Any]:
    """How streams learn of changes: the store polled only, or Redis notifications too."""
    if request.param == "polling":
        return {}
    prefix: str = request.getfixturevalue("redis_prefix")
    return {"redis_url": REDIS_URL, "redis_prefix": prefix}


def settings(database_url: str, admin_key: str, **extra: Any) -> Settings:
    return Settings(env="test", database_url=database_url, admin_key=admin_key, **extra)


@pytest.fixture
def seeded(database_url: str, admin_key: str, gate: Gate) -> str:
    """``billing`` v1 on ``prod``, stored; the servers start on it."""
    with gated_client(database_url, admin_key, gate):
        pass
    return database_url


@pytest.fixture
def server(seeded: str, admin_key: str, gate: Gate, notify: dict[str, Any]) -> Iterator[Served]:
    """A server that executes the test's runs."""
    with served(
        settings(seeded, admin_key, **FAST, **notify),
        run_engine=lambda: engine.Engine(kinds=node_kinds(gate)),
    ) as s:
        yield s


def held_resume(url: str, headers: dict[str, str], gate: Gate) -> str:
    """A run that failed at ``check``, resumed (async) on ``url`` with ``check`` held."""
    gate.open = False
    failed = httpx.post(f"{url}/v1/run", json=BODY, headers=headers, timeout=30).json()
    assert failed["status"] == "failed", failed
    gate.open = True
    gate.held.clear()
    run_id: str = failed["run_id"]
    resumed = httpx.post(
        f"{url}/v1/runs/{run_id}/resume", json={"mode": "async"}, headers=headers, timeout=30
    )
    assert resumed.status_code == 202, resumed.text
    return run_id


def read_all(frames: Iterator[Event], gate: Gate) -> list[Event]:
    """Every event (with an id) until the stream closes; ``check`` is released once it is seen
    running."""
    got = []
    for event in frames:
        if event.id is None:  # a keep-alive or the retry
            continue
        got.append(event)
        if event.name == "step" and (event.data["node"], event.data["state"]) == (
            "check",
            "running",
        ):
            gate.held.set()
    return got


def digits(event: Event) -> list[int]:
    assert event.id is not None
    attempt, _, stages = event.id.partition(".")
    return [int(attempt), *map(int, stages)]


def assert_in_order(got: list[Event]) -> None:
    """Each node's states move forward; ids grow digit by digit; nothing is sent twice."""
    seen: dict[str, list[str]] = {}
    for event in got:
        if event.name == "step":
            seen.setdefault(event.data["node"], []).append(event.data["state"])
    rank = {"pending": 0, "running": 1}
    for node, states in seen.items():
        ranks = [rank.get(s, 2) for s in states]
        assert ranks == sorted(ranks) and len(set(states)) == len(states), (node, states)
    for before, after in itertools.pairwise(got):
        a, b = digits(before), digits(after)
        assert all(x <= y for x, y in zip(a, b, strict=False)), (before.id, after.id)
    done = [e.data["steps_done"] for e in got if e.name == "run"]
    assert done == sorted(done)


def test_a_runs_events_arrive_in_order_and_end(server: Served, admin_key: str, gate: Gate) -> None:
    headers = bearer(admin_key)
    run_id = held_resume(server.url, headers, gate)
    with events(server.url, run_id, headers=headers) as (response, frames):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store, no-transform"
        got = read_all(frames, gate)
    assert_in_order(got)
    steps = [(e.data["node"], e.data["state"]) for e in got if e.name == "step"]
    assert ("draft", "cached") in steps  # completed by the first attempt: not run again
    assert steps.index(("check", "running")) < steps.index(("check", "succeeded"))
    assert steps[-1] == ("final", "succeeded")
    last_run, end = got[-2], got[-1]
    assert (last_run.name, end.name) == ("run", "end")
    assert last_run.data["status"] == "succeeded"
    assert (last_run.data["steps_done"], last_run.data["steps_total"]) == (3, 3)
    assert end.data == {
        "run_id": run_id,
        "status": "succeeded",
        "attempt": 2,
        "cost_usd": pytest.approx(0.02),  # draft in attempt 1, final in attempt 2
        "error": None,
    }
    final = next(e for e in got if e.name == "step" and e.data["state"] == "succeeded")
    assert final.data["latency_s"] is not None and final.data["ended_at"]


def test_a_reconnect_with_last_event_id_repeats_nothing(
    server: Served, admin_key: str, gate: Gate
) -> None:
    headers = bearer(admin_key)
    run_id = held_resume(server.url, headers, gate)
    first: list[Event] = []
    with events(server.url, run_id, headers=headers) as (_, frames):
        for event in frames:
            if event.id is not None:
                first.append(event)
            if event.name == "step" and event.data["node"] == "check":
                break  # the client goes away with check running
    assert first[-1].data["state"] == "running"
    gate.held.set()
    for _ in range(500):  # the run ends while nobody streams it
        run = httpx.get(f"{server.url}/v1/runs/{run_id}", headers=headers).json()
        if run["status"] == "succeeded":
            break
        time.sleep(0.02)
    with events(server.url, run_id, headers=headers, last_event_id=first[-1].id) as (_, frames):
        second = [e for e in frames if e.id is not None]
    assert_in_order(first + second)
    sent_first = {(e.data["node"], e.data["state"]) for e in first if e.name == "step"}
    sent_second = [(e.data["node"], e.data["state"]) for e in second if e.name == "step"]
    assert not sent_first & set(sent_second)
    assert ("check", "succeeded") in sent_second and ("final", "succeeded") in sent_second
    assert second[-1].name == "end"
    # At the end already: 204, which tells an EventSource to stop reconnecting.
    with events(server.url, run_id, headers=headers, last_event_id=second[-1].id) as (r, _):
        assert r.status_code == 204


def test_access_and_bad_requests(server: Served, admin_key: str, gate: Gate) -> None:
    headers = bearer(admin_key)
    gate.open = False
    run_id = httpx.post(f"{server.url}/v1/run", json=BODY, headers=headers, timeout=30).json()[
        "run_id"
    ]
    with httpx.Client(base_url=server.url, headers=headers) as admin:
        viewer = new_key(admin, "watcher", "viewer")  # type: ignore[arg-type]
    with events(server.url, run_id, headers=bearer(viewer)) as (response, frames):
        assert response.status_code == 200
        got = [e for e in frames if e.id is not None]
    assert [e.name for e in got][-2:] == ["run", "end"]
    assert got[-1].data["status"] == "failed"
    assert {e.data["node"]: e.data["state"] for e in got if e.name == "step"} == {
        "draft": "succeeded",
        "check": "failed",
        "final": "cancelled",
    }
    with events(server.url, run_id, headers={}) as (response, _):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    with events(server.url, "no-such-run", headers=headers) as (response, _):
        assert response.status_code == 404
    with events(server.url, "r" * 65, headers=headers) as (response, _):
        assert response.status_code == 422
    with events(server.url, run_id, headers=headers, last_event_id="7;drop") as (response, _):
        assert response.status_code == 400
        response.read()
        assert response.json()["error"]["code"] == "invalid_last_event_id"


def test_a_replica_that_does_not_execute_the_run_streams_it(
    seeded: str, admin_key: str, gate: Gate, notify: dict[str, Any]
) -> None:
    # Replica B's poll, with Redis subscribed, is longer than the test: what it streams after
    # the first read came through the Redis notifications of replica A.
    slow_poll = {"run_events_redis_poll_s": 60.0} if notify else {}
    with (
        served(
            settings(seeded, admin_key, **FAST, **notify),
            run_engine=lambda: engine.Engine(kinds=node_kinds(gate)),
        ) as a,
        served(
            settings(seeded, admin_key, **FAST, **notify, **slow_poll),
            run_engine=engine.Engine,
        ) as b,
    ):
        headers = bearer(admin_key)
        run_id = held_resume(a.url, headers, gate)
        with events(b.url, run_id, headers=headers) as (response, frames):
            assert response.status_code == 200
            signals = b.app.state.runs.signals
            if notify:
                for _ in range(500):
                    if signals.subscribed.is_set():
                        break
                    time.sleep(0.01)
                assert signals.subscribed.is_set()
            got = read_all(frames, gate)
    assert_in_order(got)
    assert got[-1].name == "end" and got[-1].data["status"] == "succeeded"
    states = [(e.data["node"], e.data["state"]) for e in got if e.name == "step"]
    assert ("check", "running") in states and ("final", "succeeded") in states


def wait_until(done: Callable[[], bool]) -> None:
    for _ in range(500):
        if done():
            return
        time.sleep(0.01)
    raise AssertionError("never happened")


def test_keep_alives_a_bounded_lifetime_a_cap_and_a_client_that_leaves(
    seeded: str, admin_key: str, gate: Gate
) -> None:
    bounds = {"run_events_heartbeat_s": 0.2, "run_events_max_s": 1.0}
    with served(
        settings(seeded, admin_key, **FAST, **bounds, run_events_max_streams=1),
        run_engine=lambda: engine.Engine(kinds=node_kinds(gate)),
    ) as server:
        headers = bearer(admin_key)
        streams = server.app.state.run_streams
        run_id = held_resume(server.url, headers, gate)
        with events(server.url, run_id, headers=headers) as (_, frames):
            # The one stream this process serves: the next is refused, with when to retry.
            with events(server.url, run_id, headers=headers) as (refused, _):
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "5"
                refused.read()
                assert refused.json()["error"]["code"] == "too_many_streams"
            first = list(frames)  # check is held: the stream ends at its max duration
        assert first[0].name == "retry" and first[0].data == {"ms": 1000}
        assert any(e.name == "comment" and e.data["text"] == "keep-alive" for e in first)
        assert "end" not in {e.name for e in first}
        last = [e for e in first if e.id is not None][-1]
        # The client reconnects where it was: nothing again, then the rest.
        gate.held.set()
        with events(server.url, run_id, headers=headers, last_event_id=last.id) as (_, frames):
            second = read_all(frames, gate)
        assert_in_order([e for e in first if e.id is not None] + second)
        assert second[-1].name == "end"
        wait_until(lambda: streams.active == 0)
        # A client that leaves mid-stream: its loop stops and its wake-up is dropped.
        gate.open = False
        failed = httpx.post(f"{server.url}/v1/run", json=BODY, headers=headers, timeout=30)
        gate.open = True
        gate.held.clear()
        run_id = failed.json()["run_id"]
        httpx.post(f"{server.url}/v1/runs/{run_id}/resume", json={"mode": "async"}, headers=headers)
        with events(server.url, run_id, headers=headers) as (_, frames):
            assert next(frames).name == "retry"
            wait_until(lambda: streams.active == 1 and streams.signals.streams == 1)
        wait_until(lambda: streams.active == 0 and streams.signals.streams == 0)
        gate.held.set()


def test_the_readme_curl_command_streams_a_run(server: Served, admin_key: str, gate: Gate) -> None:
    command = next(
        c.text for b in readme.blocks() for c in readme.commands(b) if c.text.startswith("curl -N ")
    )
    gate.open = False
    failed = httpx.post(f"{server.url}/v1/run", json=BODY, headers=bearer(admin_key), timeout=30)
    filled = command.replace("http://127.0.0.1:8000", server.url).replace(
        "RUN_ID", failed.json()["run_id"]
    )
    shown = subprocess.run(
        ["bash", "-c", filled],
        env={**os.environ, "ROLLGRAPH_API_KEY": admin_key},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    got = list(sse.parse(iter(shown.splitlines())))
    assert got[0].name == "retry"
    assert [e.name for e in got][-2:] == ["run", "end"]
    assert got[-1].data["status"] == "failed"
    # The README's ids have its run's shape: `<attempt>.<run digit><a digit per node>`.
    assert all(re.fullmatch(r"1\.[0-4][0-3]{3}", e.id) for e in got if e.id is not None)
