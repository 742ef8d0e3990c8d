"""``follow`` (the clients' and ``rollgraph runs follow``'s) reads a run when its event stream
says it changed, and polls a server without the stream, as before.

With the stream, ``follow`` is given an hour between polls: it can only get past the first
read through the stream's wake-ups (a thread bounds the test if it never does; its bound is
not a measurement). Without it, a server answering the events route 404 (an older version) is
stood in by an HTTP transport that answers that route 404 and relays the rest to a real server.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import engine
from control_plane.client import AsyncClient, SyncClient, models
from tests.fixtures import bearer
from tests.sse import Served, served
from tests.test_run_events import FAST, held_resume, settings
from tests.test_runs_async import Gate, gated_client, node_kinds

HOUR = 3600.0


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def server(database_url: str, admin_key: str, gate: Gate) -> Iterator[Served]:
    with gated_client(database_url, admin_key, gate):  # billing v1 on prod
        pass
    with served(
        settings(database_url, admin_key, **FAST),
        run_engine=lambda: engine.Engine(kinds=node_kinds(gate)),
    ) as s:
        yield s


def states(seen: list[models.RunDetail]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for run in seen:
        for step in run.steps:
            if (step.node, step.state) not in out:
                out.append((step.node, step.state))
    return out


def follow_in_thread(url: str, admin_key: str, run_id: str, gate: Gate) -> list[models.RunDetail]:
    seen: list[models.RunDetail] = []

    def follow() -> None:
        with SyncClient(url, admin_key) as rg:
            for run in rg.follow(run_id, interval_s=HOUR):
                seen.append(run)
                if any((s.node, s.state) == ("check", "running") for s in run.steps):
                    gate.held.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), f"follow never got past {states(seen)}"
    return seen


def test_follow_is_woken_by_the_event_stream(server: Served, admin_key: str, gate: Gate) -> None:
    run_id = held_resume(server.url, bearer(admin_key), gate)
    seen = follow_in_thread(server.url, admin_key, run_id, gate)
    assert seen[-1].status == "succeeded"
    got = states(seen)
    assert got.index(("check", "running")) < got.index(("check", "succeeded"))


def test_the_async_client_is_woken_by_the_event_stream(
    server: Served, admin_key: str, gate: Gate
) -> None:
    run_id = held_resume(server.url, bearer(admin_key), gate)

    async def follow() -> list[models.RunDetail]:
        seen = []
        async with AsyncClient(server.url, admin_key) as rg:
            async with asyncio.timeout(120):  # a bound on the test, not a measurement
                async for run in rg.follow(run_id, interval_s=HOUR):
                    seen.append(run)
                    if any((s.node, s.state) == ("check", "running") for s in run.steps):
                        gate.held.set()
        return seen

    seen = asyncio.run(follow())
    assert seen[-1].status == "succeeded"
    assert ("check", "running") in states(seen)


@pytest.mark.parametrize("refusal", [404, 405, 503])
def test_follow_polls_a_server_without_the_stream(
    server: Served, admin_key: str, gate: Gate, refusal: int
) -> None:
    run_id = held_resume(server.url, bearer(admin_key), gate)
    relay = httpx.Client(base_url=server.url)
    asked: list[str] = []

    def older_server(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.endswith("/events"):
            return httpx.Response(refusal, json={"error": {"code": "x", "message": "no"}})
        answer = relay.send(
            relay.build_request(request.method, request.url, headers=request.headers)
        )
        body: Any = answer.json()
        if body.get("steps") and any(s["state"] == "running" for s in body["steps"]):
            gate.held.set()
        return httpx.Response(answer.status_code, json=body)

    with SyncClient(server.url, admin_key, transport=httpx.MockTransport(older_server)) as rg:
        seen = list(rg.follow(run_id, interval_s=0.02))
    relay.close()
    assert seen[-1].status == "succeeded"
    assert asked.count(f"/v1/runs/{run_id}/events") == 1  # tried once, then polled
    assert asked.count(f"/v1/runs/{run_id}") >= 2
