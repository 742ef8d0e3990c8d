"""``python -m benchmarks.run_events --json``: how soon a step's end reaches a run-events stream.

A chain of ``STEPS`` ``bench.sleep`` nodes runs asynchronously, in two profiles: ``dense``,
steps of 0.10–0.19 s (ends closer together than the progress interval, so the bound of one
snapshot per interval decides), and ``sparse``, steps of 0.60–0.96 s (ends further apart, as
model calls are: a change is stored at the next look, ``runs.progress.LOOK_S``). A client
streams ``GET /v1/runs/{id}/events`` from the run's start. For each ``step`` event that
reports a node ended (``succeeded``), the delay is the client's wall clock at the event's
arrival minus the step's ``ended_at`` in the trace (the engine's wall clock; one machine, one
clock). What it includes: the wait for the next progress
snapshot (``LOOK_S``, and for dense steps ``ROLLGRAPH_PROGRESS_INTERVAL_S``, 0.5 s), the batch
writer's commit, the notification (or the poll) and the stream's read. Three topologies, real
processes (``benchmarks.scale``'s server and worker, with the benchmark kinds):

* ``same_process``: SQLite, no Redis; the server that executes the run streams it (woken in
  process);
* ``replica_polling``: PostgreSQL, no Redis; the run executes on server A, B streams it by
  polling the store (``ROLLGRAPH_RUN_EVENTS_POLL_S``, 0.25 s);
* ``replica_redis``: PostgreSQL and Redis; a ``rollgraph worker`` executes the run (async runs
  are queued), server B streams it, woken by the worker's notifications.

Each gives, per profile, ``median_ms``, ``p95_ms`` and ``max_ms`` over ``samples`` (steps
ended after the stream opened). ``--progress-interval S`` sets
``ROLLGRAPH_PROGRESS_INTERVAL_S`` for the servers and the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks._common import rollgraph_definition
from benchmarks.http import _free_port
from benchmarks.scale import REDIS_URL, _process, _schema, _wait_ready

__all__ = ["main", "measure"]

STEPS = 20
RUNS = 2
# A step's seconds: base + spread * (0..9)/10, the order shuffled so ends fall anywhere in an
# interval.
PROFILES = {"dense": (0.10, 0.10), "sparse": (0.60, 0.40)}


def definition(steps: int, profile: str) -> str:
    base, spread = PROFILES[profile]
    chain = {f"s{i}": ((f"s{i - 1}",) if i else ()) for i in range(steps)}
    seconds = {n: base + spread * ((i * 7) % 10) / 10 for i, n in enumerate(chain)}
    data = rollgraph_definition(chain, kind="bench.sleep", seconds=seconds)
    return yaml.safe_dump({**data, "name": profile, "version": "v1"})


def _frames(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any], float]]:
    name, data = "message", ""
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, json.loads(data), time.time()
            name, data = "message", ""
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data += line[6:]


def _delays(url: str, stream_url: str, headers: dict[str, str], workflow: str) -> list[float]:
    """One run on ``url``, streamed from ``stream_url``: its steps' delays in seconds."""
    with httpx.Client(headers=headers, timeout=60) as client:
        body = {"workflow": workflow, "input": {"x": 1}, "mode": "async"}
        run_id = client.post(f"{url}/v1/run", json=body).json()["run_id"]
        opened = time.time()
        delays = []
        with client.stream("GET", f"{stream_url}/v1/runs/{run_id}/events") as response:
            assert response.status_code == 200, response.read()
            for name, data, received in _frames(response):
                if name == "step" and data["state"] == "succeeded" and data["ended_at"]:
                    ended = datetime.fromisoformat(data["ended_at"]).timestamp()
                    if ended >= opened:
                        delays.append(received - ended)
                if name == "end":
                    assert data["status"] == "succeeded", data
    return delays


def _summary(delays: list[float]) -> dict[str, Any]:
    ms = sorted(d * 1000 for d in delays)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {
        "samples": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(ms[-1], 1),
    }


def _scenario(env: dict[str, str], *, replica: bool, worker: bool, steps: int, runs: int) -> Any:
    admin_key = "rgk" + secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {admin_key}"}
    env = {**env, "ROLLGRAPH_ENV": "test", "ROLLGRAPH_ADMIN_KEY": admin_key}
    with ExitStack() as stack:
        urls = []
        for _ in range(2 if replica else 1):
            port = _free_port()
            stack.enter_context(_process(["--serve", str(port)], env))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            _wait_ready(url)
        if worker:
            stack.enter_context(_process(["--work", "w1"], env))
        result = {}
        for profile in PROFILES:
            with httpx.Client(base_url=urls[0], headers=headers, timeout=60) as client:
                applied = client.post("/v1/workflows", json={"source": definition(steps, profile)})
                assert applied.status_code == 201, applied.text
                label = client.put(f"/v1/workflows/{profile}/labels/prod", json={"version": "v1"})
                assert label.is_success, label.text
            delays: list[float] = []
            for _ in range(runs):
                delays += _delays(urls[0], urls[-1], headers, profile)
            result[profile] = _summary(delays)
    return result


def measure(*, steps: int = STEPS, runs: int = RUNS, progress_s: float | None = None) -> Any:
    common = {"ROLLGRAPH_EXPERIMENT_EVAL_S": "3600"}
    if progress_s is not None:
        common["ROLLGRAPH_PROGRESS_INTERVAL_S"] = str(progress_s)
    no_redis = {**common, "REDIS_URL": "", "ROLLGRAPH_REDIS_URL": ""}
    result: dict[str, Any] = {
        "steps": steps,
        "runs": runs,
        "progress_interval_s": progress_s if progress_s is not None else 0.5,
    }
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = {**no_redis, "ROLLGRAPH_DATABASE_URL": f"sqlite:///{Path(tmp) / 'rg.db'}"}
        result["same_process"] = _scenario(
            sqlite, replica=False, worker=False, steps=steps, runs=runs
        )
    with _schema() as database_url:
        pg = {**no_redis, "ROLLGRAPH_DATABASE_URL": database_url}
        result["replica_polling"] = _scenario(
            pg, replica=True, worker=False, steps=steps, runs=runs
        )
    with _schema() as database_url:
        redis = {
            **common,
            "ROLLGRAPH_DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "ROLLGRAPH_REDIS_PREFIX": f"rgbench-{uuid.uuid4().hex[:8]}",
        }
        result["replica_redis"] = _scenario(
            redis, replica=True, worker=True, steps=steps, runs=runs
        )
    result["cpu_count"] = os.cpu_count()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_events", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a short run (checks it works)")
    parser.add_argument("--progress-interval", type=float, metavar="S", default=None)
    args = parser.parse_args(argv)
    steps, runs = (3, 1) if args.quick else (STEPS, RUNS)
    result = measure(steps=steps, runs=runs, progress_s=args.progress_interval)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
