"""A replica SIGKILLed between committing an async run and queueing it, with real processes.

Redis (a private ``redis-server`` with an append-only file) is frozen with SIGSTOP, so the
replica's enqueue blocks after the run's row is committed; the replica is then SIGKILLed. The
replica's XADD already sits in the frozen Redis's socket buffer, so two fates are tested:

* ``lost``: Redis is SIGKILLed too and restarted from its append-only file: the XADD never ran,
  nothing is on the queue;
* ``delivered``: Redis is resumed and runs the XADD: the message is on the queue, but the run
  was never marked enqueued.

Either way a new replica and a worker start, the outbox sweep (``control_plane/runs/outbox.py``)
finds the run stored ``queued`` without its mark and queues it (again, in the second case), and
the run executes exactly once. ``tests/test_queue_outbox.py`` proves the sweep in-process; this
is the crash itself.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text

from control_plane.store.db import create_db_engine
from tests.faults import GREET_V1, counter, ended, private_redis, rollgraph, wait_for
from tests.fixtures import bearer
from tests.processes import free_port

pytestmark = pytest.mark.slow


def _stored_async_runs(database_url: str) -> list[tuple[str, str, object]]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, status, enqueued_at FROM run WHERE mode = 'async'")
            )
            return [(row.id, row.status, row.enqueued_at) for row in rows]
    finally:
        engine.dispose()


@pytest.mark.parametrize("fate", ["lost", "delivered"])
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_replica_killed_between_commit_and_enqueue_leaves_a_run_that_executes_once(
    database_url: str, admin_key: str, tmp_path: Path, fate: str
) -> None:
    with private_redis(tmp_path) as server:
        redis_url = server.url
        env = {
            "ROLLGRAPH_ENV": "test",
            "ROLLGRAPH_ADMIN_KEY": admin_key,
            "ROLLGRAPH_DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ROLLGRAPH_REDIS_PREFIX": "rgfault",
            # The enqueue waits on the frozen Redis instead of giving up after 0.5 s (which
            # would refuse the submission with a 503 and delete the run: no crash window).
            "ROLLGRAPH_REDIS_TIMEOUT_S": "120",
            # No back-pressure reading, which would block on the frozen Redis before the commit.
            "ROLLGRAPH_QUEUE_MAX_DEPTH": "0",
            "ROLLGRAPH_QUEUE_MAX_WAIT_S": "0",
            # The sweep's grace (the visibility timeout) and interval: seconds, not minutes.
            "ROLLGRAPH_QUEUE_VISIBILITY_TIMEOUT_S": "2",
            "ROLLGRAPH_ORPHAN_SWEEP_S": "1",
            "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
        }
        headers = bearer(admin_key)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = ["serve", "--port", str(port)]
        with rollgraph(serve, env, tmp_path / "doomed.log", ready=f"{url}/readyz") as doomed:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                assert client.post("/v1/workflows", json={"source": GREET_V1}).status_code == 201
                put = client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"})
                assert put.is_success
            server.proc.send_signal(signal.SIGSTOP)
            try:
                answers: list[object] = []

                def submit() -> None:
                    body = {"workflow": "greet", "input": {"prompt": "hi"}, "mode": "async"}
                    try:
                        answers.append(httpx.post(f"{url}/v1/run", json=body, headers=headers))
                    except httpx.HTTPError as exc:  # the replica dies with the request open
                        answers.append(exc)

                sender = threading.Thread(target=submit)
                sender.start()
                stored = wait_for(
                    lambda: _stored_async_runs(database_url), timeout_s=30, what="the commit"
                )
                time.sleep(0.5)  # the replica is now blocked in the enqueue on Redis
                doomed.send_signal(signal.SIGKILL)
                doomed.wait()
                sender.join()
                if fate == "lost":
                    server.proc.send_signal(signal.SIGKILL)  # with the XADD unread
                    server.proc.wait()
                    server.start()  # from its append-only file
            finally:
                server.proc.send_signal(signal.SIGCONT)
        # The client never got a 202: the connection died with the replica.
        assert len(answers) == 1 and isinstance(answers[0], httpx.HTTPError), answers
        [(run_id, status, enqueued_at)] = stored
        assert status == "queued" and enqueued_at is None
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        # Lost: the message never reached the queue; delivered: it did, unmarked.
        assert r.xlen("rgfault:runs") == (0 if fate == "lost" else 1)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        metrics = free_port()
        work = ["worker", "--name", "w1", "--metrics-port", str(metrics)]
        with (
            rollgraph(["serve", "--port", str(port)], env, tmp_path / "replica.log",
                      ready=f"{url}/readyz"),
            rollgraph(work, env, tmp_path / "worker.log"),
            httpx.Client(base_url=url, headers=headers, timeout=30) as client,
        ):  # fmt: skip
            run = wait_for(lambda: ended(client, run_id), timeout_s=60, what="the run to end")
            assert run["status"] == "succeeded", run
            assert run["attempt"] == 1
            # Sweeps go on every second: the marked run is not queued or executed again.
            time.sleep(4)
            assert _stored_async_runs(database_url)[0][2] is not None  # marked enqueued
            assert client.get(f"/v1/runs/{run_id}").json()["attempt"] == 1
            worker_url = f"http://127.0.0.1:{metrics}"
            assert counter(worker_url, "rollgraph_runs_total") == 1  # executed once
            assert counter(url, "rollgraph_runs_total") == 0  # not by the replica
            trace = client.get(f"/v1/runs/{run_id}").json()["trace"]
            assert [s["node"] for s in trace["steps"]] == ["write"]
            assert r.xlen("rgfault:runs") == 0 and r.xlen("rgfault:runs:dead") == 0
        r.close()
