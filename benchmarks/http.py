"""``POST /v1/run`` over real HTTP against a bare FastAPI endpoint, and a router decision against
one bare mmh3 call, measured in one run.

    python -m benchmarks.http            # a table
    python -m benchmarks.http --json     # one JSON object
    python -m benchmarks.http --quick    # a few requests: checks the benchmark works, not the API

Two uvicorn servers run as subprocesses with the same settings (one process each, loopback,
asyncio loop, access log off): the rollgraph app on a temp SQLite database with product-video
v3.2 (four simulated nodes, no latency, no simulated failures) behind ``prod``, and a tiny
FastAPI app whose ``POST /v1/run`` returns a constant. The same load generator (an asyncio httpx
client with N concurrent workers, keep-alive) drives them in interleaved rounds, each round
bounded by a request count and a time budget, so machine noise hits both alike; throughput
figures are medians over rounds and ``run_vs_bare`` is the median of the per-round paired ratios.
Every request sends the admin key as a bearer token, so authentication is part of the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import math
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import mmh3

from benchmarks.report import report
from control_plane.rollouts.assignment import Allocation, Arm, assign

__all__ = ["build_app", "main", "measure", "router_ns"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "product-video" / "v3.2.yaml"
HOST = "127.0.0.1"
TARGETS = {  # key → (measured value, threshold, whether the value must be at most the threshold)
    "run_at_least_half_of_bare": ("run_vs_bare", 0.5, False),
    "assign_within_3x_mmh3": ("assign_vs_mmh3", 3.0, True),
}
CONSTANT = {"status": "ok"}
OK = ("succeeded", "ok")


# -- the servers (each in its own process) ----------------------------------------------------
def build_app(kind: str, database_url: str, admin_key: str) -> Any:
    """``run``: the rollgraph app with a simulator that neither sleeps nor fails; ``bare``: one
    endpoint returning a constant, at the same path."""
    if kind == "bare":
        from fastapi import FastAPI

        bare = FastAPI()

        @bare.post("/v1/run")
        async def run() -> dict[str, str]:
            return CONSTANT

        @bare.get("/healthz")
        async def healthz() -> dict[str, str]:
            return CONSTANT

        return bare
    import engine
    from control_plane.app import create_app
    from control_plane.settings import Settings
    from engine.providers import SimProvider

    settings = Settings(env="test", database_url=database_url, admin_key=admin_key)
    return create_app(
        settings,
        run_engine=lambda: engine.Engine(providers=[SimProvider(time_scale=0, failure_rate=0)]),
    )


def _serve(kind: str, port: int, database_url: str) -> None:
    import uvicorn

    app = build_app(kind, database_url, os.environ["ROLLGRAPH_ADMIN_KEY"])
    # The same settings for both servers: one process, asyncio loop, h11, no access log.
    uvicorn.run(
        app, host=HOST, port=port, loop="asyncio", http="h11", log_level="warning", access_log=False
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(kind: str, database_url: str, admin_key: str) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "ROLLGRAPH_ADMIN_KEY": admin_key}
    command = [sys.executable, "-m", "benchmarks.http", "--serve", kind, "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--database-url", database_url], cwd=ROOT, env=env, stdin=subprocess.DEVNULL
    )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the {kind} server exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not become ready in 60 s")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _seed(url: str, admin_key: str) -> None:
    from control_plane.client import SyncClient

    with SyncClient(url, admin_key) as client:
        client.apply(EXAMPLE.read_text(encoding="utf-8"))
        client.promote("product-video", "v3.2", label="prod")


# -- the load generator -----------------------------------------------------------------------
@dataclass
class Load:
    """Per-round throughput and every request's latency, for one server."""

    rps: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1e3


async def _round(
    client: httpx.AsyncClient, url: str, workers: int, max_requests: int, max_s: float, sink: Load
) -> None:
    """``workers`` concurrent loops of ``POST /v1/run`` until ``max_requests`` or ``max_s``."""
    sent = 0
    latencies: list[float] = []
    start = time.perf_counter()
    stop_at = start + max_s

    async def worker() -> None:
        nonlocal sent
        while sent < max_requests and time.perf_counter() < stop_at:
            sent += 1
            body = {
                "workflow": "product-video",
                "input": {"prompt": "a red sneaker on a rainy street"},
                "user_id": f"user-{sent}",
            }
            t0 = time.perf_counter()
            response = await client.post(url, json=body)
            latencies.append(time.perf_counter() - t0)
            # Both answers are parsed, alike: a run must have succeeded, the bare one is "ok".
            if response.status_code != 200 or response.json().get("status") not in OK:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")

    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - start
    sink.rps.append(len(latencies) / elapsed)
    sink.latencies_s.extend(latencies)


async def _http(
    urls: Mapping[str, str],
    admin_key: str,
    *,
    workers: int,
    rounds: int,
    per_round: int,
    round_s: float,
) -> dict[str, Load]:
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    loads = {name: Load() for name in urls}
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        for url in urls.values():  # warm-up: connections, compiled workflow, caches
            await _round(client, f"{url}/v1/run", workers, workers * 10, 2.0, Load())
        for _ in range(rounds):
            for name, url in urls.items():
                gc.collect()
                await _round(client, f"{url}/v1/run", workers, per_round, round_s, loads[name])
    return loads


# -- the router against one mmh3 call ---------------------------------------------------------
def _timed(loop: Callable[[], None]) -> float:
    gc.collect()
    start = time.perf_counter_ns()
    loop()
    return time.perf_counter_ns() - start


def router_ns(calls: int, rounds: int) -> dict[str, float]:
    """One ``assign`` decision (one 10 % candidate, distinct user ids) against one ``mmh3.hash``
    of the salted string built as the router builds it (precomputed ``salt:`` + unit id), both
    in the same Python loop in interleaved rounds; an empty loop over the same ids is subtracted
    from both."""
    salt = "wf-product-video"
    allocation = Allocation(salt, "v3.2", (Arm("v3.3", 0.1),))
    prefix = f"{salt}:"
    ids = [f"user-{i}" for i in range(calls)]
    hash_, assign_ = mmh3.hash, assign

    def empty() -> None:
        for _unit in ids:
            pass

    def bare() -> None:
        for unit in ids:
            hash_(prefix + unit, 0, False)

    def decide() -> None:
        for unit in ids:
            assign_(allocation, unit)

    decide()  # fills the allocation's memo of answers, as a long-running server would have
    samples: dict[str, list[float]] = {"empty": [], "mmh3": [], "assign": []}
    for _ in range(rounds):
        for name, loop in (("empty", empty), ("mmh3", bare), ("assign", decide)):
            samples[name].append(_timed(loop) / calls)
    empty_ns = samples["empty"]
    assign_net = [a - e for a, e in zip(samples["assign"], empty_ns, strict=True)]
    mmh3_net = [m - e for m, e in zip(samples["mmh3"], empty_ns, strict=True)]
    return {
        "assign_ns": statistics.median(assign_net),
        "mmh3_ns": statistics.median(mmh3_net),
        "loop_ns": statistics.median(empty_ns),
        "assign_vs_mmh3": statistics.median(
            a / m for a, m in zip(assign_net, mmh3_net, strict=True)
        ),
    }


# -- the whole benchmark ----------------------------------------------------------------------
def measure(quick: bool = False) -> dict[str, Any]:
    workers = 8 if quick else 16
    rounds = 3 if quick else 10
    per_round, round_s = (200, 0.5) if quick else (3000, 2.5)
    admin_key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="rollgraph-bench-http-") as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'rollgraph.db'}"
        with (
            _server("run", database_url, admin_key) as run_url,
            _server("bare", database_url, admin_key) as bare_url,
        ):
            _seed(run_url, admin_key)
            loads = asyncio.run(
                _http(
                    {"run": run_url, "bare": bare_url},
                    admin_key,
                    workers=workers,
                    rounds=rounds,
                    per_round=per_round,
                    round_s=round_s,
                )
            )
    run, bare = loads["run"], loads["bare"]
    out: dict[str, Any] = {
        "run_rps": statistics.median(run.rps),
        "run_p50_ms": run.percentile_ms(0.50),
        "run_p99_ms": run.percentile_ms(0.99),
        "bare_rps": statistics.median(bare.rps),
        "bare_p50_ms": bare.percentile_ms(0.50),
        "bare_p99_ms": bare.percentile_ms(0.99),
        "run_vs_bare": statistics.median(r / b for r, b in zip(run.rps, bare.rps, strict=True)),
    }
    calls, router_rounds = (20_000, 5) if quick else (100_000, 15)
    out.update(router_ns(calls, router_rounds))
    out["targets"] = {
        name: out[key] <= limit if at_most else out[key] >= limit
        for name, (key, limit, at_most) in TARGETS.items()
    }
    out["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "fastapi": importlib.metadata.version("fastapi"),
        "httpx": importlib.metadata.version("httpx"),
    }
    out["notes"] = [
        f"HTTP: {rounds} interleaved rounds per server, each up to {per_round} requests or "
        f"{round_s} s, {workers} concurrent workers of one httpx.AsyncClient (keep-alive) in this "
        "process, after a warm-up; rps = median over rounds, run_vs_bare = median of per-round "
        "paired ratios; p50/p99 over every request of all rounds",
        "servers: uvicorn subprocesses, one worker each, loop=asyncio, http=h11, access log off, "
        "loopback; run = rollgraph POST /v1/run on product-video v3.2 via the prod label "
        "(4 simulated nodes, time_scale 0, failure_rate 0; run and trace stored in SQLite), a "
        "distinct user_id per request; bare = FastAPI POST /v1/run returning a constant, with "
        "the same request bytes",
        "the load generator shares the machine with the servers and is itself Python: on few "
        "cores it can be the bottleneck of the bare server, so bare_rps is a lower bound of "
        "the bare server's capacity and run_vs_bare an upper bound",
        f"router: {router_rounds} interleaved rounds of {calls} calls over distinct user ids; "
        "assign_ns = one assign() on Allocation(salt, v3.2, [v3.3 at 10 %]); mmh3_ns = one "
        "mmh3.hash(prefix + unit_id, 0, False) with the prefix precomputed as the router does; "
        "the same loop with no call (loop_ns) is subtracted from both; assign_vs_mmh3 = median "
        "of per-round paired ratios",
    ]
    if quick:
        out["notes"].append("--quick: too few requests for the numbers to mean anything")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a few requests (smoke test)")
    parser.add_argument("--serve", choices=["run", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.port, args.database_url)
        return 0
    result = measure(quick=args.quick)
    print(report(result, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
