"""Scale-out on Redis, proven with real processes: two API replicas (``rollgraph serve``) and two
``rollgraph worker`` processes against the machine's PostgreSQL and Redis.

* a worker killed with SIGKILL in the middle of a run: the other worker takes the run over after
  the visibility timeout and finishes it, and the steps the dead worker completed are served
  from the shared step cache (neither executed nor billed again);
* the same idempotency key sent to both replicas at once executes once;
* a rollback through one replica is served by the other within a second;
* Redis stopped and started under load (a ``redis-server`` of the test's own, on a free port,
  with an append-only file so that it comes back with its streams): no 5xx on the synchronous
  path, async submissions refused with a clear 503 while it is away, and no accepted async run
  lost.

Each test isolates its Redis keys under its own ``ROLLGRAPH_REDIS_PREFIX``. Without Redis these
tests are skipped, and under ``CI=true`` they fail.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from control_plane.settings import Settings
from tests.fixtures import EXAMPLES, REDIS_URL, bearer, open_client
from tests.processes import own_redis

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VIDEO = (EXAMPLES / "v3.2.yaml").read_text()
GREET = """
name: greet
version: {version}
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {{model: sim/{model}, prompt: "${{inputs.prompt}}"}}
outputs:
  text: "${{write.text}}"
"""

Serve = Callable[..., AbstractContextManager[str]]
Worker = Callable[..., AbstractContextManager[subprocess.Popen[bytes]]]


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    return redis_prefix


def env_for(database_url: str, admin_key: str, redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ROLLGRAPH_REDIS_PREFIX": prefix,
        # Short, so that a dead worker's run is taken over within seconds.
        "ROLLGRAPH_QUEUE_VISIBILITY_TIMEOUT_S": "2",
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
    }


def api(url: str, admin_key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers=bearer(admin_key), timeout=60)


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ended(client: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
    return run if run["status"] in ("succeeded", "failed") else None


def video_running(client: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
    states = {s["node"]: s["state"] for s in run["steps"]}
    return run if states.get("video") == "running" and states.get("voice") == "succeeded" else None


# -- a worker killed mid-run -------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_run_of_a_killed_worker_finishes_on_the_other_without_redoing_its_steps(
    database_url: str, admin_key: str, prefix: str, serve: Serve, worker: Worker
) -> None:
    env = env_for(database_url, admin_key, REDIS_URL, prefix)
    with ExitStack() as stack:
        url = stack.enter_context(serve(env))
        workers = {name: stack.enter_context(worker(env, name=name)) for name in ("w1", "w2")}
        client = stack.enter_context(api(url, admin_key))
        assert client.post("/v1/workflows", json={"source": VIDEO}).status_code == 201
        assert client.put(
            "/v1/workflows/product-video/labels/prod", json={"version": "v3.2"}
        ).is_success
        accepted = client.post(
            "/v1/run",
            json={"workflow": "product-video", "input": {"prompt": "a lamp"}, "mode": "async"},
        )
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        assert accepted.json()["status"] == "queued"

        r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        steps_key = f"{prefix}:steps:{run_id}"
        # enhance and voice take about a second; video about six: kill while video runs.
        done = wait_for(
            lambda: set(r.hkeys(steps_key)) if r.hlen(steps_key) >= 2 else None,
            timeout_s=30,
            what="the first steps of the run",
        )
        # The server, another process, reads each node's state from the store as it runs there.
        running = wait_for(
            lambda: video_running(client, run_id), timeout_s=30, what="video running (progress)"
        )
        assert {s["node"]: s["state"] for s in running["steps"]} == {
            "enhance": "succeeded",
            "video": "running",
            "voice": "succeeded",
            "cut": "pending",
        }, running["steps"]
        pending = r.xpending_range(f"{prefix}:runs", "workers", "-", "+", 10)
        assert [p["consumer"] for p in pending], pending
        holder = str(pending[0]["consumer"])  # a str: the client decodes responses
        workers[holder].send_signal(signal.SIGKILL)
        workers[holder].wait()

        run = wait_for(lambda: ended(client, run_id), timeout_s=90, what="the run to end")
        assert run["status"] == "succeeded", run
        trace = client.get(f"/v1/runs/{run_id}").json()["trace"]
        by_node = {s["node"]: s for s in trace["steps"]}
        # What the dead worker completed came from the cache: not executed again. It was
        # billed by the dead worker, so it is this run's cost (once), not a saving.
        served = {node for node, s in by_node.items() if s["cache_hit"]}
        assert served == {"enhance", "voice"}, (done, by_node)
        for node in served:
            assert by_node[node]["cost_usd"] > 0
            assert by_node[node].get("cost_saved_usd", 0) == 0
        assert not by_node["video"]["cache_hit"]
        # The run's bill is every step's, each once: the dead worker's and the survivor's.
        assert run["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in by_node.values()))
        assert trace["taken_over"] is True
        assert run["attempt"] == 1  # taken over, not resumed
        r.close()


# -- one idempotency key, two replicas ---------------------------------------------------------
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_key_sent_to_both_replicas_at_once_executes_once(
    database_url: str, admin_key: str, prefix: str, serve: Serve
) -> None:
    env = env_for(database_url, admin_key, REDIS_URL, prefix)
    with serve(env) as one, serve(env) as two, api(one, admin_key) as a, api(two, admin_key) as b:
        source = GREET.format(version="v1", model="writer-large")  # about a second per run
        assert a.post("/v1/workflows", json={"source": source}).status_code == 201
        assert a.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
        for attempt in range(3):
            key = f"order-{attempt}-{uuid.uuid4().hex}"
            answers = race([a, b], "/v1/run", {"workflow": "greet", "input": {"prompt": "hi"}}, key)
            codes = sorted(answer.status_code for answer in answers)
            # Both answered with the run, or one with it and one "in progress" (retry later).
            assert codes in ([200, 200], [200, 409]), [x.text for x in answers]
            ids = {x.json()["run_id"] for x in answers if x.status_code == 200}
            assert len(ids) == 1
        # Async: one queued run per key, whichever replica stored it.
        body = {"workflow": "greet", "input": {"prompt": "hi"}, "mode": "async"}
        answers = race([a, b], "/v1/run", body, f"queued-{uuid.uuid4().hex}")
        assert sorted(x.status_code for x in answers) in ([202, 202], [202, 409])
        assert len({x.json()["run_id"] for x in answers if x.status_code == 202}) == 1
        runs = a.get("/v1/runs", params={"workflow": "greet", "limit": 100}).json()
        assert len(runs) == 4  # one execution per key
        r = redis.Redis.from_url(REDIS_URL)
        assert r.xlen(f"{prefix}:runs") == 1  # queued once (no worker in this test)
        r.close()


def race(
    clients: list[httpx.Client], path: str, body: dict[str, Any], key: str
) -> list[httpx.Response]:
    """``body`` posted with Idempotency-Key ``key`` by every client at the same moment."""
    answers: list[httpx.Response] = []
    start = threading.Barrier(len(clients))

    def send(client: httpx.Client) -> None:
        start.wait()
        answers.append(client.post(path, json=body, headers={"Idempotency-Key": key}))

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


# -- a rollback reaches every replica ---------------------------------------------------------
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_rollback_through_one_replica_is_served_by_the_other_within_a_second(
    database_url: str, admin_key: str, prefix: str, serve: Serve
) -> None:
    env = env_for(database_url, admin_key, REDIS_URL, prefix)
    # The poller would see the change within a second too (every 0.1 s by default); slowed
    # down, only the Redis notification can bring it in time.
    env["ROLLGRAPH_REGISTRY_POLL_S"] = "30"
    with serve(env) as one, serve(env) as two, api(one, admin_key) as a, api(two, admin_key) as b:
        for version in ("v1", "v2"):
            source = GREET.format(version=version, model="writer-small")
            if version == "v2":  # another definition, as fast (runs are not what is timed)
                source = source.replace("  write:", "  draft:").replace("{write.", "{draft.")
            assert a.post("/v1/workflows", json={"source": source}).status_code == 201
        assert a.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
        assert a.put("/v1/workflows/greet/labels/prod", json={"version": "v2"}).is_success
        body = {"workflow": "greet", "input": {"prompt": "hi"}}
        wait_for(
            lambda: b.post("/v1/run", json=body).json()["version"] == "v2",
            timeout_s=5,
            what="replica two to serve v2",
        )
        rolled = a.post("/v1/workflows/greet/labels/prod/rollback")
        assert rolled.status_code == 200, rolled.text
        since = time.monotonic()
        while True:
            # Timed by when a request is sent: a run takes a while to answer, and what counts
            # is which version a request arriving after the rollback is routed to.
            sent = time.monotonic() - since
            if b.post("/v1/run", json=body).json()["version"] == "v1":
                break
            assert sent < 1.0, "replica two still routed to v2 a second after the rollback"
        # And from then on only the baseline.
        assert {b.post("/v1/run", json=body).json()["version"] for _ in range(5)} == {"v1"}


# -- Redis stopped and started under load ------------------------------------------------------
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_redis_stopped_and_started_under_load_loses_nothing(
    database_url: str, admin_key: str, tmp_path: Path, serve: Serve, worker: Worker
) -> None:
    with own_redis(tmp_path) as (redis_url, stop_redis, start_redis):
        env = env_for(database_url, admin_key, redis_url, "rgtest")
        with (
            serve(env) as url,
            worker(env, name="w1"),
            worker(env, name="w2"),
            api(url, admin_key) as client,
        ):
            source = GREET.format(version="v1", model="writer-small")
            assert client.post("/v1/workflows", json={"source": source}).status_code == 201
            assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
            accepted: list[str] = []
            refused: list[httpx.Response] = []
            broken: list[str] = []
            sync_ok = 0
            stop = threading.Event()

            def load() -> None:
                nonlocal sync_ok
                with api(url, admin_key) as c:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        body: dict[str, Any] = {"workflow": "greet", "input": {"prompt": f"{n}"}}
                        answer = c.post("/v1/run", json=body)
                        if answer.status_code == 200:
                            sync_ok += 1
                        else:
                            broken.append(f"sync {answer.status_code}: {answer.text}")
                        answer = c.post("/v1/run", json={**body, "mode": "async"})
                        if answer.status_code == 202:
                            accepted.append(answer.json()["run_id"])
                        elif answer.status_code == 503:
                            refused.append(answer)
                        else:
                            broken.append(f"async {answer.status_code}: {answer.text}")

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(2)
            stop_redis()
            time.sleep(3)
            start_redis()
            time.sleep(3)
            stop.set()
            for t in threads:
                t.join()
            assert not broken, broken[:5]
            assert sync_ok > 0 and accepted
            assert refused, "no async submission met the outage"
            for answer in refused:
                body = answer.json()
                assert body["error"]["code"] == "redis_unavailable", body
                assert answer.headers.get("Retry-After")
            # Every accepted async run ends: none is lost on the way through the queue.
            for run_id in accepted:
                run = wait_for(functools.partial(ended, client, run_id), timeout_s=60, what=run_id)
                assert run["status"] == "succeeded", run


# -- dead letters ------------------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_queued_run_that_fails_for_good_is_dead_lettered_with_its_error(
    database_url: str, admin_key: str, prefix: str, serve: Serve, worker: Worker
) -> None:
    env = env_for(database_url, admin_key, REDIS_URL, prefix)
    failing = GREET.format(version="v1", model="writer-small").replace(
        "    with: {model", "    timeout_s: 0.001\n    retry: {max_attempts: 1}\n    with: {model"
    )
    with serve(env) as url, worker(env, name="w1"), api(url, admin_key) as client:
        assert client.post("/v1/workflows", json={"source": failing}).status_code == 201
        assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
        body = {"workflow": "greet", "input": {"prompt": "hi"}, "mode": "async"}
        run_id = client.post("/v1/run", json=body).json()["run_id"]
        run = wait_for(lambda: ended(client, run_id), timeout_s=30, what="the run to end")
        assert run["status"] == "failed"
        letters = wait_for(
            lambda: client.get("/v1/queue/dead-letters").json(), timeout_s=10, what="a letter"
        )
        assert [letter["run_id"] for letter in letters] == [run_id]
        assert "timed out" in letters[0]["error"] or letters[0]["error"] == run["error"]
        queue = client.get("/v1/queue").json()
        assert queue["enabled"] and queue["dead"] == 1 and queue["pending"] == 0
        # Still resumable, like any failed run.
        assert client.post(f"/v1/runs/{run_id}/resume").status_code == 200


def test_without_redis_there_is_no_queue_and_no_worker(tmp_path: Path) -> None:
    settings = Settings(
        env="dev", database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", redis_url=None
    )
    with open_client(settings, run_engine=None) as client:
        headers = bearer(settings.admin_key)
        assert client.get("/v1/queue", headers=headers).json() == {
            "enabled": False, "stream": None, "length": None, "pending": None, "dead": None,
            "waiting": None, "oldest_wait_s": None, "max_depth": None, "max_wait_s": None,
            "accepting": None,
        }  # fmt: skip
        missing = client.get("/v1/queue/dead-letters", headers=headers)
        assert missing.status_code == 404
        assert "REDIS_URL" in missing.json()["error"]["message"]
    done = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "worker"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if "REDIS_URL" not in k},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "set REDIS_URL" in done.stderr and "Traceback" not in done.stderr
