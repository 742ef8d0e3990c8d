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


def _unread_bytes_at(port: int) -> int:
    """Bytes received by the sockets of the server listening on ``port`` (here a frozen Redis)
    that it has not read: what clients sent it since it stopped."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, queues = fields[1], fields[4]
            if int(local.rsplit(":", 1)[1], 16) == port:
                total += int(queues.split(":")[1], 16)
    return total


def _generation(database_url: str) -> int:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT generation FROM registry_state")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def _heard(listener: redis.client.PubSub, heard: list[str]) -> str | None:
    """The newest generation published so far (``heard`` keeps what came before)."""
    message = listener.get_message(timeout=0.1)
    if message is not None:
        heard.append(message["data"].decode())
    return heard[-1] if heard else None


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
        # The doomed replica does not sweep, so that the submission is the only call to
        # the frozen Redis on its idle pooled connection (see the publish below).
        doomed_env = {**env, "ROLLGRAPH_ORPHAN_SWEEP_S": "3600"}
        with rollgraph(serve, doomed_env, tmp_path / "doomed.log", ready=f"{url}/readyz") as doomed:
            # Each registry change is published to the other processes after its answer; the
            # last one must have reached Redis before it freezes, or the publish holds the
            # pool's idle connection and the submission's XADD waits in a new connection's
            # handshake, never sent (the `delivered` fate failed so on CI).
            watcher = redis.Redis.from_url(redis_url)
            listener = watcher.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            listener.subscribe("rgfault:registry")
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                assert client.post("/v1/workflows", json={"source": GREET_V1}).status_code == 201
                put = client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"})
                assert put.is_success
            newest = str(_generation(database_url))
            heard: list[str] = []
            wait_for(
                lambda: _heard(listener, heard) == newest,
                timeout_s=30,
                what="the last registry change to be published",
            )
            listener.close()
            watcher.close()
            server.proc.send_signal(signal.SIGSTOP)
            redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
            unread = _unread_bytes_at(redis_port)
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
                # The replica is blocked in the enqueue once its XADD (well over 64 bytes:
                # the stream, the run id, the message) waits unread in the frozen Redis's
                # socket; a fixed sleep raced it on a loaded CI machine.
                wait_for(
                    lambda: _unread_bytes_at(redis_port) > unread + 64,
                    timeout_s=30,
                    what="the XADD to reach the frozen Redis",
                )
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
