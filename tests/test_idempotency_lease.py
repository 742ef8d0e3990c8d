"""Idempotency claims are leases, renewed while their run executes.

In one process, on SQLite and PostgreSQL: a live request renews its claim, so a retry during a
run longer than the lease is still refused (409), and the first request's answer is the one
stored. With real processes (slow): two ``rollgraph serve`` replicas on PostgreSQL and Redis.
A sync ``POST /v1/run`` with an ``Idempotency-Key`` runs on replica A, which is SIGKILLed
mid-run; the client's retry on replica B gets 409 while A's lease is fresh, then takes the claim
over once it lapses (a lease, not the run's whole deadline), goes on from the steps A completed
(served from Redis, not executed again, billed once as this run's cost), and the run is stored
once under the claim's run id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import httpx
import pytest
import redis
from sqlmodel import Session, select

from control_plane.kit.time import as_utc
from control_plane.store.db import create_db_engine
from control_plane.store.tables import IdempotencyKeyRow
from tests.fixtures import EXAMPLES, REDIS_URL, bearer
from tests.processes import free_port, stop, wait_ready
from tests.test_runs_async import BODY as BILLING
from tests.test_runs_async import Gate, gated_client

VIDEO = (EXAMPLES / "v3.2.yaml").read_text()
LEASE_S = 2.0
BODY = {"workflow": "product-video", "input": {"prompt": "a lamp"}}


@contextmanager
def replica(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``rollgraph serve`` (one process, so that a SIGKILL kills the replica) and its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "control_plane.cli", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{url}/readyz", timeout_s=60, what="the replica")
        yield url, proc
    finally:
        stop(proc)


def wait_for(predicate: Any, *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_live_request_renews_its_claim_so_a_retry_waits_for_it(
    database_url: str, admin_key: str
) -> None:
    lease_s = 0.3
    gate = Gate()
    gate.open, headers = True, {"Idempotency-Key": "slow"}
    gate.held.clear()  # the run waits in its gate until the test lets it go
    db = create_db_engine(database_url)

    def lived() -> float:
        # How long the claim has been held, by its renewed expiry: past one lease, only
        # renewals kept it.
        with Session(db) as session:
            row = session.exec(select(IdempotencyKeyRow)).one()
            assert row.expires_at is not None
            return (as_utc(row.expires_at) - as_utc(row.created_at)).total_seconds()

    try:
        with gated_client(database_url, admin_key, gate, idempotency_lease_s=lease_s) as client:
            first: list[Any] = []  # the TestClient's responses
            caller = threading.Thread(
                target=lambda: first.append(client.post("/v1/run", json=BILLING, headers=headers))
            )
            caller.start()
            wait_for(lambda: gate.calls["test.gate"] == 1, timeout_s=30, what="the run's gate")
            wait_for(lambda: lived() > 3 * lease_s, timeout_s=30, what="renewals of the claim")
            retry = client.post("/v1/run", json=BILLING, headers=headers)
            assert retry.status_code == 409, retry.text  # not taken over: its request lives
            assert retry.json()["error"]["code"] == "idempotency_in_progress"
            gate.held.set()
            caller.join(timeout=30)
            assert first[0].status_code == 200, first[0].text
            replay = client.post("/v1/run", json=BILLING, headers=headers)
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.json()["run_id"] == first[0].json()["run_id"]
            assert gate.calls["test.gate"] == 1  # ran once
    finally:
        gate.held.set()
        db.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_retry_takes_over_a_killed_replicas_sync_run_once_its_lease_lapses(
    database_url: str, admin_key: str, redis_prefix: str
) -> None:
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "ROLLGRAPH_REDIS_PREFIX": redis_prefix,
        "ROLLGRAPH_IDEMPOTENCY_LEASE_S": str(LEASE_S),
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
    }
    headers = {**bearer(admin_key), "Idempotency-Key": "killed-mid-run"}
    with ExitStack() as stack:
        url_a, proc_a = stack.enter_context(replica(env))
        url_b, _ = stack.enter_context(replica(env))
        b = stack.enter_context(httpx.Client(base_url=url_b, headers=bearer(admin_key), timeout=90))
        assert b.post("/v1/workflows", json={"source": VIDEO}).status_code == 201
        assert b.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.2"}).is_success

        def first_attempt() -> None:
            # Its answer never comes: the replica is killed under it.
            with suppress(httpx.HTTPError):
                httpx.post(f"{url_a}/v1/run", json=BODY, headers=headers, timeout=90)

        caller = threading.Thread(target=first_attempt, daemon=True)
        caller.start()
        r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        stack.callback(r.close)

        def steps_so_far() -> tuple[str, set[str]] | None:
            # enhance and voice take about a second each, video about six: A is killed while
            # video runs, with two steps completed and written under the claim's run id.
            for name in r.scan_iter(match=f"{redis_prefix}:steps:*"):
                if r.hlen(name) >= 2:
                    return name.rsplit(":", 1)[1], {str(k) for k in r.hkeys(name)}
            return None

        run_id, done = wait_for(steps_so_far, timeout_s=30, what="A's first steps")
        proc_a.send_signal(signal.SIGKILL)
        proc_a.wait()
        caller.join(timeout=30)

        # The retry: 409 while A's lease is fresh, then B takes the claim over.
        refusals = []
        deadline = time.monotonic() + LEASE_S + 30  # the old claim held for deadline + margin: 90 s
        while True:
            answer = b.post("/v1/run", json=BODY, headers=headers)
            if answer.status_code != 409:
                break
            refusals.append(answer)
            assert time.monotonic() < deadline, "the claim of the killed replica was not taken over"
            time.sleep(min(float(answer.headers["Retry-After"]), 0.5))
        for refused in refusals:
            assert refused.json()["error"]["code"] == "idempotency_in_progress"
            assert 1 <= int(refused.headers["Retry-After"]) <= LEASE_S + 1
        assert answer.status_code == 200, answer.text
        run = answer.json()
        assert run["run_id"] == run_id and run["status"] == "succeeded"
        assert "idempotent-replayed" not in answer.headers

        trace = b.get(f"/v1/runs/{run_id}").json()["trace"]
        by_node = {s["node"]: s for s in trace["steps"]}
        served = {node for node, s in by_node.items() if s["cache_hit"]}
        assert served == {"enhance", "voice"}, (done, by_node)  # not executed again
        for node in served:  # billed by A, never reported: this run's cost, once
            assert by_node[node]["cost_usd"] > 0
            assert by_node[node].get("cost_saved_usd", 0) == 0
        assert not by_node["video"]["cache_hit"]
        assert run["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in by_node.values()))
        assert trace["taken_over"] is True

        # The run ended once: one stored run, and the key replays it.
        runs = b.get("/v1/runs", params={"workflow": "product-video"}).json()
        assert [x["run_id"] for x in runs] == [run_id]
        replay = b.post("/v1/run", json=BODY, headers=headers)
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["run_id"] == run_id
        assert r.exists(f"{redis_prefix}:steps:{run_id}") == 0  # dropped once stored
