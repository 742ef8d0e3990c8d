"""The served request's latency with shadowing on vs off, in one process and one run.

    python -m benchmarks.shadow --json     # the figures as one JSON object
    python -m benchmarks.shadow --quick    # a few requests: checks the benchmark works
    python -m benchmarks.shadow --redis-url redis://127.0.0.1:6379/0   # shadows to the queue

One app (SQLite in a temporary directory, the simulated providers at ``--time-scale`` of their
modelled durations, so a run waits on its "model" as a real one waits on the network) answers
sequential sync runs of a one-node workflow through its ASGI interface. Blocks of requests
alternate between shadowing off and shadowing 100 % of users onto another version (ABBA order,
so a drift of the machine over the run weighs on both conditions alike); each mirrored request
runs its shadow on the same event loop while the next requests are served, which is the
interference measured. Between blocks the shadow queue is drained, untimed, so that one block's
backlog never lands in the next.

``shadow_served_latency_ratio`` is the median served latency with shadowing on over off (the
issue's bar: ≤ 1.05). Medians, because a shared 2-core machine adds rare long pauses that are
nobody's doing here; the 95th percentiles are printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from fastapi.testclient import TestClient

import engine
from benchmarks.report import report
from control_plane.app import create_app
from control_plane.settings import Settings
from engine.providers import default_providers

__all__ = ["measure"]

ADMIN_KEY = "rgk-bench-shadow-admin-key-0123456789abcdef"
WORKFLOW = """
name: bench-shadow
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
outputs:
  text: "${write.text}"
"""
SHADOW = "/v1/workflows/bench-shadow/labels/prod/shadow"


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def _block(client: TestClient, tag: str, requests: int) -> list[float]:
    timings = []
    for i in range(requests):
        body = {"workflow": "bench-shadow", "input": {"prompt": f"p{i}"}, "user_id": f"{tag}-{i}"}
        start = time.perf_counter()
        response = client.post("/v1/run", json=body)
        timings.append(time.perf_counter() - start)
        if response.status_code != 200:
            raise RuntimeError(f"run refused: {response.status_code} {response.text}")
    return timings


def measure(
    *, rounds: int, requests: int, time_scale: float, redis_url: str | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    prefix = f"bench-shadow-{secrets.token_hex(4)}"
    queue: dict[str, Any] = {"redis_url": redis_url, "redis_prefix": prefix} if redis_url else {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            env="test",
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            admin_key=ADMIN_KEY,
            experiment_eval_s=3600,
            **queue,
        )
        app = create_app(
            settings,
            run_engine=lambda: engine.Engine(providers=default_providers(time_scale=time_scale)),
        )
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with TestClient(app, headers=headers) as client:
            for version, model in (("v1", "writer-small"), ("v2", "writer-large")):
                source = WORKFLOW.replace("writer-small", model)
                created = client.post("/v1/workflows", json={"source": source, "version": version})
                assert created.status_code == 201, created.text
            assert client.put("/v1/workflows/bench-shadow/labels/prod", json={"version": "v1"})
            portal = client.portal
            assert portal is not None
            shadows = app.state.runs.shadows
            _block(client, "warm", requests)  # compiled workflow, caches, connections
            off: list[float] = []
            on: list[float] = []
            for r in range(rounds):
                for shadowing in (False, True) if r % 2 == 0 else (True, False):
                    if shadowing:
                        body = {"version": "v2", "percent": 100, "max_cost_usd_per_hour": 1e3}
                        assert client.put(SHADOW, json=body).status_code == 200
                    # The same users and prompts in both conditions: the simulator draws a
                    # call's duration from its inputs, so both see the same model times.
                    (on if shadowing else off).extend(_block(client, f"r{r}", requests))
                    if shadowing:
                        assert client.delete(SHADOW).status_code == 200
                    portal.call(shadows.drain)  # untimed: the next block starts with none
            mirrored = client.get(
                "/v1/runs", params={"workflow": "bench-shadow", "version": "v2", "limit": 1000}
            ).json()
    if redis_url:  # the queued shadow runs, never taken by a worker here
        _forget(redis_url, prefix)
    median_off, median_on = statistics.median(off), statistics.median(on)
    return {
        "shadow_served_latency_ratio": median_on / median_off,
        "served_p50_ms_off": median_off * 1000,
        "served_p50_ms_on": median_on * 1000,
        "served_p95_ms_off": _p95(off) * 1000,
        "served_p95_ms_on": _p95(on) * 1000,
        "requests_per_condition": len(off),
        "shadow_runs": len(mirrored),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "notes": [
            f"{rounds} rounds x 2 blocks of {requests} sequential sync runs, ABBA order; "
            "shadowing on = 100 % of users mirrored to v2, run on the same event loop",
            f"simulated model time scale {time_scale:g} (0: no model time, CPU only, the worst "
            "case for a shadow sharing the served request's process)",
            f"whole benchmark {time.perf_counter() - started:.1f} s",
        ],
    }


def _forget(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shadow", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a few requests only")
    parser.add_argument(
        "--time-scale", type=float, default=0.05, help="of the simulated models' durations"
    )
    parser.add_argument(
        "--redis-url",
        help="shadow runs go to this Redis's run queue (for workers; none runs them here), so "
        "the server's part is the enqueue only",
    )
    args = parser.parse_args(argv)
    rounds, requests = (2, 5) if args.quick else (6, 40)
    result = measure(
        rounds=rounds, requests=requests, time_scale=args.time_scale, redis_url=args.redis_url
    )
    if args.redis_url:
        result["notes"].append("shadow runs queued on Redis (a private prefix, deleted after)")
    if args.quick:
        result["notes"].append("--quick: too few requests for the ratio to mean much")
    print(report(result, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
