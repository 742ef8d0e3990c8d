"""A ``map`` element's engine overhead against a plain node's, measured in one process.

    python -m benchmarks.map            # a table
    python -m benchmarks.map --json     # one JSON object
    python -m benchmarks.map --quick    # a few tiny runs: checks the benchmark works

Two workflows do the same model work on the simulator with its latency and failures off: one
``map`` node over N elements of ``llm.generate``, and N independent ``llm.generate`` nodes. Each
element is a step of its own (``engine.map_steps``: trace entry, retry policy, step-cache entry,
budget admission), so it should cost about what a node costs. Per-element and per-node figures
are the wall time of one run divided by N; the simulator's own CPU per call (the same calls made
directly, no engine; its fastest round) is subtracted from both to give the engine's overhead,
whose ratio is ``map_item_overhead_vs_node`` (the issue's target: within 2×). The contenders
are measured in interleaved rounds (``benchmarks.engine.interleaved``), with and without a step
cache.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import uuid
from typing import Any

import engine
from benchmarks.engine import Bench, Interleaved, interleaved
from benchmarks.report import report
from engine.providers import ModelCall
from engine.providers.sim import SimProvider

__all__ = ["main", "measure"]

MODEL = "sim/writer-small"
TARGET = 2.0  # map_item_overhead_vs_node at most this (issue 14)


def _map_source(n: int) -> dict[str, Any]:
    node = {"uses": "llm.generate", "with": {"model": MODEL, "prompt": "${item}"}}
    items = {"items": [f"p{i}" for i in range(n)], "concurrency": n, "node": node}
    return {"name": "mapped", "nodes": {"each": {"uses": "map", "with": items}}}


def _nodes_source(n: int) -> dict[str, Any]:
    nodes = {
        f"n{i}": {"uses": "llm.generate", "with": {"model": MODEL, "prompt": f"p{i}"}}
        for i in range(n)
    }
    return {"name": "plain", "nodes": nodes}


def _runs(eng: engine.Engine, wf: engine.Workflow, cached: bool) -> Bench:
    async def bench() -> None:
        # A fresh cache and run id each time: every step is stored, none is found.
        cache = engine.MemoryStepCache() if cached else None
        result = await eng.run(wf, {}, run_id=uuid.uuid4().hex, cache=cache)
        if not result.ok:
            raise RuntimeError(f"{wf.name} run {result.status}: {result.error}")

    return bench


def _sim_calls(provider: SimProvider, task: str, n: int) -> Bench:
    async def bench() -> None:
        for i in range(n):
            await provider.invoke(ModelCall(task, "writer-small", {"prompt": f"p{i}"}, node="x"))

    return bench


def _per(samples: Interleaved, name: str, n: int) -> float:
    return statistics.median(samples.samples[name]) / n * 1e6


def _sim_floor(samples: Interleaved, n: int) -> float:
    """The simulator's CPU per call, in seconds: the fastest round's, since machine noise only
    ever adds time, and a noisy floor would make an overhead negative."""
    return min(samples.samples["sim"]) / n


def _overhead_ratio(samples: Interleaved, item: str, node: str, n: int) -> float:
    """Median over rounds of (element − sim call) / (node − sim call), paired per round."""
    floor = _sim_floor(samples, n) * n
    rounds = zip(samples.samples[item], samples.samples[node], strict=True)
    return statistics.median((m - floor) / (p - floor) for m, p in rounds)


async def measure(n: int, runs: int, rounds: int) -> dict[str, Any]:
    provider = SimProvider(time_scale=0, failure_rate=0.0)
    kind = engine.default_kinds.get("llm.generate")
    task = kind.provider_task if kind is not None else None
    if task is None:
        raise RuntimeError("llm.generate is not a model kind")
    async with engine.Engine(providers=[provider]) as eng:
        mapped, plain = eng.define(_map_source(n)), eng.define(_nodes_source(n))
        benches = {
            "map": _runs(eng, mapped, False),
            "nodes": _runs(eng, plain, False),
            "map_cached": _runs(eng, mapped, True),
            "nodes_cached": _runs(eng, plain, True),
            "sim": _sim_calls(provider, task, n),
        }
        samples = await interleaved(benches, runs, rounds)
    sim = _sim_floor(samples, n) * 1e6
    out: dict[str, Any] = {
        "map_us_per_item": _per(samples, "map", n),
        "node_us_per_node": _per(samples, "nodes", n),
        "sim_us_per_call": sim,
        "map_cached_us_per_item": _per(samples, "map_cached", n),
        "node_cached_us_per_node": _per(samples, "nodes_cached", n),
    }
    out["map_item_overhead_us"] = out["map_us_per_item"] - sim
    out["node_overhead_us"] = out["node_us_per_node"] - sim
    out["map_item_overhead_vs_node"] = _overhead_ratio(samples, "map", "nodes", n)
    out["map_item_overhead_vs_node_cached"] = _overhead_ratio(
        samples, "map_cached", "nodes_cached", n
    )
    out["targets"] = {
        "map_item_overhead_within_2x_node": out["map_item_overhead_vs_node"] <= TARGET
    }
    out["machine"] = {"cores": os.cpu_count(), "python": platform.python_version()}
    out["notes"] = [
        f"{n:,} elements vs {n:,} independent nodes of llm.generate on {MODEL} (time_scale 0, "
        f"failure_rate 0), map concurrency {n:,}; {runs} runs each in {rounds} interleaved "
        "rounds after a warm-up; figures are the median over rounds of the mean run / N",
        "overhead: minus the simulator's own CPU per call (the same calls made directly, its "
        "fastest round); "
        "ratios are the median over rounds of each round's paired ratio",
        "cached: a fresh MemoryStepCache and run id per run (every step stored, none found)",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.map", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--items", type=int, default=None, help="elements (and nodes) per run")
    parser.add_argument("--runs", type=int, default=None, help="runs per contender")
    parser.add_argument("--quick", action="store_true", help="a few tiny runs (smoke test)")
    args = parser.parse_args(argv)
    n = args.items or (20 if args.quick else 1000)
    rounds = 3 if args.quick else 9
    runs = args.runs or (30 if args.quick else 45)
    result = asyncio.run(measure(n, runs, rounds))
    if args.quick:
        result["notes"].append("--quick: too few runs for the numbers to mean anything")
    print(report(result, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
