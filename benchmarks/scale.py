"""``python -m benchmarks.scale --json``: async runs through the Redis queue, with 1 and 2 workers.

One API server and ``rollgraph worker`` processes (real processes, as deployed) against the
machine's PostgreSQL (a schema of the benchmark's own, dropped afterwards) and Redis (a key
prefix of its own). The workflow is a chain of three nodes that each sleep 20 ms
(``bench.sleep``), so a run's own time is known and what is measured is the machinery.

* ``async_rps_1_worker`` / ``async_rps_2_workers``: runs per second from the first submission
  to the last run stored, ``RUNS`` runs submitted as fast as 8 client threads can;
  ``scale_ratio`` is the second over the first (ideal 2; on a 2-core machine the server, the
  workers, PostgreSQL, Redis and the load generator share the cores). Each worker has
  ``WORKER_SLOTS`` runs in flight, so one worker is bound by its CPU and not by its slots.
  The benchmark waits with ONE query per ``WAIT_S`` that counts ended runs in the store (the
  system of record, read through SQL on the benchmark's own schema), never a request per run.
* ``cpu_1_worker`` / ``cpu_2_workers``: over each measured interval, the share of one core
  used by the server, each worker, the benchmark itself (submitting threads and the waiting
  query) and the whole machine (``/proc``; 2.0 is both cores busy), with ``loadavg`` before
  and after: on a shared machine the ratio within one run is what counts.
* ``direct_ms`` / ``queued_ms``: median latency of one run at a time, a sync ``POST /v1/run``
  against an async run submitted and polled (every 2 ms) until it is stored;
  ``queue_extra_ms`` is the difference.

``--serve PORT`` and ``--work NAME`` are the server and worker processes it starts itself (with
the benchmark's node kinds); the ``ROLLGRAPH_*`` and ``REDIS_URL`` variables configure them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

import engine
from benchmarks._common import bench_kinds, rollgraph_definition
from benchmarks._cpu import CpuClock, loadavg
from benchmarks.http import _free_port

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "ROLLGRAPH_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ROLLGRAPH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NODE_S = 0.02
CHAIN = {"a": (), "b": ("a",), "c": ("b",)}
RUNS = 400
WORKER_SLOTS = 32  # 60 ms a run: 32 slots would allow ~500 runs/s, far above one core's worth
WAIT_S = 0.02
LATENCY_SAMPLES = 30


def bench_engine() -> engine.Engine:
    return engine.Engine(kinds=bench_kinds())


def definition() -> str:
    data = rollgraph_definition(CHAIN, kind="bench.sleep", seconds=dict.fromkeys(CHAIN, NODE_S))
    return yaml.safe_dump({**data, "name": "sleepy", "version": "v1"})


# -- the processes ------------------------------------------------------------------------------
def _serve(port: int) -> None:
    import uvicorn

    from control_plane.app import create_app

    uvicorn.run(
        create_app(run_engine=bench_engine), host="127.0.0.1", port=port, log_level="warning"
    )


def _work(name: str) -> int:
    from control_plane.settings import get_settings
    from control_plane.worker import run_worker

    return asyncio.run(run_worker(get_settings(), consumer=name, run_engine=bench_engine))


@contextmanager
def _process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.scale", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _schema() -> Iterator[str]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from control_plane.store.db import create_db_engine

    name = f"rg_bench_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{name}"'))
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        admin.dispose()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server did not become ready in 60 s")


# -- the measurements ---------------------------------------------------------------------------
def _ended(client: httpx.Client, run_id: str) -> bool:
    return client.get(f"/v1/runs/{run_id}").json()["status"] in ("succeeded", "failed")


class _Store:
    """The benchmark's window on its own schema: how many async runs have ended."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import text

        from control_plane.store.db import create_db_engine

        self._engine = create_db_engine(database_url)
        self._query = text(
            "SELECT count(*) FROM run WHERE mode = 'async' AND status IN ('succeeded', 'failed')"
        )

    def ended(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(self._query).scalar_one())

    def wait_for(self, count: int) -> None:
        while self.ended() < count:
            time.sleep(WAIT_S)

    def close(self) -> None:
        self._engine.dispose()


def _latencies(client: httpx.Client) -> dict[str, float]:
    body = {"workflow": "sleepy", "input": {"x": 1}}
    direct, queued = [], []
    for _ in range(LATENCY_SAMPLES):
        start = time.perf_counter()
        assert client.post("/v1/run", json=body).status_code == 200
        direct.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_id = client.post("/v1/run", json={**body, "mode": "async"}).json()["run_id"]
        while not _ended(client, run_id):
            time.sleep(0.002)
        queued.append(time.perf_counter() - start)
    d, q = statistics.median(direct) * 1000, statistics.median(queued) * 1000
    return {"direct_ms": round(d, 1), "queued_ms": round(q, 1), "queue_extra_ms": round(q - d, 1)}


def _throughput(
    store: _Store, url: str, headers: dict[str, str], clock: CpuClock | None = None
) -> float:
    ids: list[str] = []
    lock = threading.Lock()
    per_thread = RUNS // 8

    def submit() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as own:
            for _ in range(per_thread):
                body = {"workflow": "sleepy", "input": {"x": 1}, "mode": "async"}
                run_id = own.post("/v1/run", json=body).json()["run_id"]
                with lock:
                    ids.append(run_id)

    before = store.ended()
    if clock is not None:
        clock.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.wait_for(before + len(ids))
    return len(ids) / (time.perf_counter() - start)


def _phase(
    store: _Store, url: str, headers: dict[str, str], pids: dict[str, int]
) -> tuple[float, dict[str, Any]]:
    """A warm-up round, then a measured one with the CPU of every process over it."""
    _throughput(store, url, headers)  # warm-up: connections, compiled workflow, new worker
    clock = CpuClock(pids)
    load = loadavg()
    rps = _throughput(store, url, headers, clock)
    return rps, {**clock.shares(), "loadavg_before": load, "loadavg_after": loadavg()}


def measure() -> dict[str, Any]:
    admin_key = "rgk" + secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {admin_key}"}
    with _schema() as database_url, ExitStack() as stack:
        env = {
            "ROLLGRAPH_ENV": "test",
            "ROLLGRAPH_ADMIN_KEY": admin_key,
            "ROLLGRAPH_DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "ROLLGRAPH_REDIS_PREFIX": f"rgbench-{uuid.uuid4().hex[:8]}",
            "ROLLGRAPH_WORKER_CONCURRENCY": str(WORKER_SLOTS),
        }
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = stack.enter_context(_process(["--serve", str(port)], env))
        _wait_ready(url)
        store = _Store(database_url)
        stack.callback(store.close)
        client = stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=60))
        assert client.post("/v1/workflows", json={"source": definition()}).status_code == 201
        assert client.put("/v1/workflows/sleepy/labels/prod", json={"version": "v1"}).is_success
        result: dict[str, Any] = {
            "runs": RUNS,
            "node_s": NODE_S,
            "nodes": len(CHAIN),
            "worker_slots": WORKER_SLOTS,
            "cpu_count": os.cpu_count(),
        }
        pids = {"server": server.pid}
        with _process(["--work", "w1"], env) as w1:
            pids["worker_w1"] = w1.pid
            one, result["cpu_1_worker"] = _phase(store, url, headers, pids)
            result.update(_latencies(client))
            with _process(["--work", "w2"], env) as w2:
                pids["worker_w2"] = w2.pid
                two, result["cpu_2_workers"] = _phase(store, url, headers, pids)
        result["async_rps_1_worker"] = round(one, 1)
        result["async_rps_2_workers"] = round(two, 1)
        result["scale_ratio"] = round(two / one, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--work", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        _serve(args.serve)
        return 0
    if args.work is not None:
        return _work(args.work)
    result = measure()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
