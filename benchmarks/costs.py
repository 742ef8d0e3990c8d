"""``python -m benchmarks.costs --json``: what one run costs, the inputs of docs/SCALING.md.

One API server and one ``rollgraph worker`` (real processes, ``benchmarks.scale``'s) against
the machine's PostgreSQL (a schema of its own, dropped afterwards) and a PRIVATE Redis
(``redis-server`` on a free port, so its command counts are this benchmark's alone). The
workflow is ``benchmarks.scale``'s chain of three ``bench.sleep`` nodes. ``RUNS`` sync runs,
then ``RUNS`` async ones; for each kind, per run:

* ``server_cpu_ms`` / ``worker_cpu_ms``: user + system CPU of the process (``/proc/PID/stat``)
  over the phase, divided by the runs (the benchmark's own CPU is not in it);
* ``db_inserts`` / ``db_updates`` / ``db_rows``: ``pg_stat_user_tables`` deltas of the
  benchmark's schema (``n_tup_ins``, ``n_tup_upd``, ``n_live_tup``), ``db_bytes``: the
  ``pg_total_relation_size`` delta of its tables (indexes and TOAST included, 8 KB pages);
* ``wal_bytes_upper_bound``: ``pg_current_wal_lsn()`` delta; WAL is cluster-wide, so on a
  shared PostgreSQL it counts other clients' writes too;
* ``redis_calls`` / ``redis_usec``: ``INFO commandstats`` deltas of the private Redis (calls and
  the time Redis spent in them), with ``redis_by_command``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
from sqlalchemy import text

from benchmarks._cpu import loadavg, process_cpu_s
from benchmarks.http import _free_port
from benchmarks.scale import _process, _schema, _Store, _wait_ready, definition

__all__ = ["main", "measure"]

RUNS = 300
THREADS = 4
# A PostgreSQL backend publishes its table counters when it goes idle, but at most once a second;
# one that went idle within that second publishes them up to 10 s later (PGSTAT_IDLE_INTERVAL).
# Without this wait the insert and update counts of the last batches were missing (1.75 for 2).
STATS_FLUSH_S = 11.0


@contextmanager
def _private_redis() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not on PATH: install Debian's redis-server")
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while _redis_stats(port) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the private redis-server did not start in 10 s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _redis_stats(port: int) -> dict[str, tuple[int, int]] | None:
    """Command → (calls, usec), or None while Redis does not answer."""
    import redis

    try:
        stats = redis.Redis(port=port).info("commandstats")
    except redis.RedisError:
        return None
    return {k.removeprefix("cmdstat_"): (v["calls"], v["usec"]) for k, v in stats.items()}


def _pg_stats(database_url: str) -> dict[str, int]:
    from control_plane.store.db import create_db_engine

    time.sleep(STATS_FLUSH_S)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0),"
                    " coalesce(sum(n_live_tup), 0),"
                    " coalesce(sum(pg_total_relation_size(relid)), 0),"
                    " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
                    " FROM pg_stat_user_tables WHERE schemaname = current_schema()"
                )
            ).one()
    finally:
        engine.dispose()
    keys = ("db_inserts", "db_updates", "db_rows", "db_bytes", "wal_bytes_upper_bound")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def _submit(url: str, headers: dict[str, str], mode: str) -> None:
    def one_thread() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for _ in range(RUNS // THREADS):
                body = {"workflow": "sleepy", "input": {"x": 1}, "mode": mode}
                response = client.post("/v1/run", json=body)
                if response.status_code not in (200, 202):
                    raise RuntimeError(f"POST /v1/run: {response.status_code} {response.text}")

    threads = [threading.Thread(target=one_thread) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _phase(
    run: Callable[[], None], pids: dict[str, int], database_url: str, redis_port: int
) -> dict[str, Any]:
    """The per-run cost of ``run()`` (which makes ``RUNS`` runs) on every counter."""
    pg, cmds = _pg_stats(database_url), _redis_stats(redis_port) or {}
    cpu = {name: process_cpu_s(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    cpu_after = {name: process_cpu_s(pid) for name, pid in pids.items()}
    pg_after, cmds_after = _pg_stats(database_url), _redis_stats(redis_port) or {}
    result: dict[str, Any] = {"runs_per_s": round(RUNS / wall, 1)}
    for name in pids:
        result[f"{name}_cpu_ms"] = round((cpu_after[name] - cpu[name]) * 1000 / RUNS, 3)
    for key, value in pg_after.items():
        result[key] = round((value - pg[key]) / RUNS, 2)
    by_command = {
        name: round((calls - cmds.get(name, (0, 0))[0]) / RUNS, 2)
        for name, (calls, _) in sorted(cmds_after.items())
        if name != "info" and calls > cmds.get(name, (0, 0))[0]
    }
    usec = sum(u - cmds.get(n, (0, 0))[1] for n, (_, u) in cmds_after.items() if n != "info")
    result["redis_calls"] = round(sum(by_command.values()), 2)
    result["redis_usec"] = round(usec / RUNS, 1)
    result["redis_by_command"] = by_command
    return result


def measure() -> dict[str, Any]:
    import secrets

    admin_key = "rgk" + secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {admin_key}"}
    with _schema() as database_url, _private_redis() as redis_url, ExitStack() as stack:
        env = {
            "ROLLGRAPH_ENV": "test",
            "ROLLGRAPH_ADMIN_KEY": admin_key,
            "ROLLGRAPH_DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "ROLLGRAPH_REDIS_PREFIX": f"rgcosts-{uuid.uuid4().hex[:8]}",
            "ROLLGRAPH_WORKER_CONCURRENCY": "32",
        }
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = stack.enter_context(_process(["--serve", str(port)], env))
        _wait_ready(url)
        client = stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=60))
        assert client.post("/v1/workflows", json={"source": definition()}).status_code == 201
        assert client.put("/v1/workflows/sleepy/labels/prod", json={"version": "v1"}).is_success
        worker = stack.enter_context(_process(["--work", "c1"], env))
        store = _Store(database_url)
        stack.callback(store.close)
        pids = {"server": server.pid, "worker": worker.pid}
        _submit(url, headers, "sync")  # warm-up: connections, compiled workflow, pools
        load = loadavg()

        def run_async() -> None:
            before = store.ended()
            _submit(url, headers, "async")
            store.wait_for(before + RUNS)

        sync = _phase(lambda: _submit(url, headers, "sync"), pids, database_url, redis_port)
        queued = _phase(run_async, pids, database_url, redis_port)
        return {
            "runs": RUNS,
            "nodes": 3,
            "sync": sync,
            "async": queued,
            "loadavg_before": load,
            "loadavg_after": loadavg(),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.costs", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = measure()
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
