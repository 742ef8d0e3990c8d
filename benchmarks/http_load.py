"""The load generators of ``benchmarks.http``: ``wrk`` pinned to a core of its own, and a Python
fallback whose figures are only upper bounds of the ratio.

A load generator on the servers' cores, or one that saturates its own core, measures itself:
the first version of this benchmark drove the bare endpoint with Python on the same two cores
and read ``run_vs_bare`` 0.59 where ``wrk`` on another core reads 0.10-0.14. So ``wrk`` runs under
``taskset`` on the last core (the servers on the others), its own CPU time is read from the
kernel (``wait4``'s rusage) and reported as a share of its core, and a round in which it used
more than ``SATURATED`` of that core does not count as a measurement of the server.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["LUA", "SATURATED", "Round", "python_round", "wrk_path", "wrk_round"]

LUA = Path(__file__).with_name("http.lua")
SATURATED = 0.9  # share of its core above which the generator may be what limits the server
BODY = {"workflow": "product-video", "input": {"prompt": "a red sneaker on a rainy street"}}
OK = ("succeeded", "ok")


@dataclass
class Round:
    """One round against one server: throughput, the latency histogram (µs → count), errors and
    the generator's CPU share of its core."""

    rps: float
    latency_us: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    generator_cpu: float = 0.0

    @staticmethod
    def percentile_ms(rounds: list[Round], q: float) -> float:
        """The ``q`` quantile of every request of ``rounds``, in ms (histograms merged)."""
        merged: Counter[int] = Counter()
        for r in rounds:
            merged.update(r.latency_us)
        total = sum(merged.values())
        rank, seen = math.ceil(q * total), 0
        for value in sorted(merged):
            seen += merged[value]
            if seen >= rank:
                return value / 1e3
        raise ValueError("no request was measured")


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_round(
    url: str,
    admin_key: str,
    *,
    connections: int,
    seconds: int,
    core: int | None,
    workdir: Path,
    also: Sequence[str] = (),
    workflow: str = "product-video",
) -> Round:
    """``wrk`` with one thread and ``connections`` keep-alive connections for ``seconds``,
    pinned to ``core``; every request a ``POST /v1/run`` of ``workflow``
    (``benchmarks/http.lua``). ``also``: more servers, each driven by a wrk process of its own
    at the same time (replicas behind no balancer); the figures are their sums."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian package `wrk`)")
    started = time.perf_counter()
    running: list[tuple[Path, list[str], subprocess.Popen[bytes]]] = []
    for target in (url, *also):
        out = workdir / f"wrk-{time.monotonic_ns()}.json"
        env = {**os.environ, "BENCH_KEY": admin_key, "BENCH_OUT": str(out)}
        env["BENCH_WORKFLOW"] = workflow
        command = ["taskset", "-c", str(core)] if core is not None else []
        command += [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
        command += ["-s", str(LUA), target]
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        running.append((out, command, proc))
    total = Round(rps=0.0)
    cpu_s = 0.0
    for out, command, proc in running:
        _, status, usage = os.wait4(proc.pid, 0)
        # wait4 reaped it behind Popen's back: without this Popen believes it still runs
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu_s += usage.ru_utime + usage.ru_stime
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed: {' '.join(command)}: {stderr[-500:]}")
        figures = json.loads(out.read_text())
        out.unlink()
        total.rps += figures["requests"] / (figures["duration_us"] / 1e6)
        total.latency_us.update({int(v): int(n) for v, n in figures["latency_us"]})
        total.errors += sum(figures["errors"].values())
    total.generator_cpu = cpu_s / (time.perf_counter() - started)
    return total


async def _python_round(url: str, admin_key: str, connections: int, seconds: float) -> Round:
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: Counter[int] = Counter()
    errors = sent = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    stop_at = start + seconds
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors, sent
            while time.perf_counter() < stop_at:
                sent += 1
                t0 = time.perf_counter()
                response = await client.post(
                    f"{url}/v1/run", json={**BODY, "user_id": f"py-{sent}"}
                )
                latencies[int((time.perf_counter() - t0) * 1e6)] += 1
                if response.status_code != 200 or response.json().get("status") not in OK:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    wall = time.perf_counter() - start
    return Round(
        rps=sum(latencies.values()) / wall,
        latency_us=latencies,
        errors=errors,
        generator_cpu=(time.process_time() - cpu0) / wall,
    )


def python_round(url: str, admin_key: str, *, connections: int, seconds: float) -> Round:
    """The fallback: an asyncio httpx client in this process, on whatever core it gets. It is
    slower than the bare server, so the bare figure is a lower bound and the ratio an upper one."""
    return asyncio.run(_python_round(url, admin_key, connections, seconds))
