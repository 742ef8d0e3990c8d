"""A map's elements as steps through the API, on SQLite and PostgreSQL: a run failing on one
element is stored with what its elements billed, and its resume (``POST /v1/runs/{id}/resume``)
takes the elements that succeeded from the stored steps, unbilled, and runs only the rest."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from control_plane.runs.progress import Progress
from tests.fixtures import app_client, seed_workflow
from tests.test_map_steps import PRICE, Billing

FAN_OUT = """
name: fanout
inputs:
  topics: list[text]
nodes:
  each:
    uses: map
    with:
      items: ${inputs.topics}
      concurrency: 1
      node:
        uses: llm.generate
        with: {model: fake/m, prompt: "${item}"}
        retry: {max_attempts: 1}
outputs:
  texts: ${each.results}
"""
TOPICS = [f"p{i}" for i in range(16)]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_resumed_map_runs_only_the_elements_that_failed(
    database_url: str, admin_key: str, mode: str
) -> None:
    provider = Billing({"p9": 1})  # element 9 fails once

    def build() -> engine.Engine:
        return engine.Engine(providers=[provider])

    with app_client(database_url, admin_key, run_engine=build) as client:
        seed_workflow(client, "fanout", {"v1": FAN_OUT}, {"prod": "v1"})
        body = {"workflow": "fanout", "input": {"topics": TOPICS}, "mode": mode}
        response = client.post("/v1/run", json=body)
        assert response.status_code in (200, 202), response.text
        run_id = response.json()["run_id"]
        first = _settled(client, run_id)
        assert first["status"] == "failed" and "no p9" in first["error"]
        # Nine elements answered and were billed before the tenth failed: the run says so.
        assert first["cost_usd"] == pytest.approx(9 * PRICE)
        entry = _map_entry(first)
        assert entry["cost_usd"] == pytest.approx(9 * PRICE)
        assert [i["status"] for i in entry["items"][8:11]] == ["succeeded", "failed", "cancelled"]
        provider.calls.clear()

        resumed = client.post(f"/v1/runs/{run_id}/resume")
        assert resumed.status_code in (200, 202), resumed.text
        done = _settled(client, run_id, attempt=2)
        assert done["status"] == "succeeded", done["error"]
        assert done["outputs"] == {"texts": [t.upper() for t in TOPICS]}
        assert sorted(provider.calls) == sorted(f"p{i}" for i in range(9, 16))
        assert all(n == 1 for n in provider.calls.values())
        items = _map_entry(done)["items"]
        assert [i["cache_hit"] for i in items] == [True] * 9 + [False] * 7
        assert done["trace"]["cost_saved_usd"] == pytest.approx(9 * PRICE)
        assert done["trace"]["cost_usd"] == pytest.approx(7 * PRICE)
        # The run's cost is over every attempt: each element billed exactly once.
        assert done["cost_usd"] == pytest.approx(16 * PRICE)
        if mode == "sync":  # counted when the attempt is stored: at once for a sync run
            metrics = client.get("/metrics").text
            kind = 'kind="llm.generate",workflow="fanout"'
            # Each element counted as a step of its kind: every call it made, in both attempts
            # (an element cancelled mid-call made one), and the nine the resume reused.
            calls = sum(i["attempts"] for d in (first, done) for i in _map_entry(d)["items"])
            assert f"rollgraph_node_attempts_total{{{kind}}} {calls - 9:.1f}" in metrics
            assert f"rollgraph_node_cache_hits_total{{{kind}}} 9.0" in metrics


def _settled(client: TestClient, run_id: str, attempt: int = 1) -> dict[str, Any]:
    """The run once its attempt ``attempt`` has ended (an async run is polled)."""
    deadline = time.monotonic() + 30
    while True:
        detail: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if detail["attempt"] >= attempt and detail["status"] not in ("queued", "running"):
            return detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.05)


def _map_entry(detail: dict[str, Any]) -> dict[str, Any]:
    steps = {s["node"]: s for s in detail["trace"]["steps"]}
    entry: dict[str, Any] = steps["each"]
    return entry


def test_progress_is_posted_as_a_maps_elements_end() -> None:
    # A map is one step for as long as its elements take; each element's end is progress.
    posts: list[object] = []

    def post(write: object) -> Future[Any]:
        posts.append(write)
        done: Future[Any] = Future()
        done.set_result(True)
        return done

    step = engine.StepTrace("each", "map")
    step.status = "running"
    step.items = [engine.StepTrace(f"each[{i}]", "llm.generate") for i in range(2)]
    trace = engine.Trace(engine.RunId("r1"), "fanout", "v1", "sha256:x", {"each": step})
    progress = Progress(post, "r1", interval_s=1e-9)  # every change is posted
    progress._trace = trace
    progress._look()
    progress._waiting = False  # the writer took it
    progress._look()
    assert len(posts) == 1  # nothing changed: nothing posted
    step.items[0].status = "succeeded"
    progress._look()
    assert len(posts) == 2
