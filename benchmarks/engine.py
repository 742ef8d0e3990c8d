"""rollgraph's engine against the asyncio floor and LangGraph, measured in one process.

    python -m benchmarks.engine            # a table
    python -m benchmarks.engine --json     # one JSON object (what ``make bench`` prints)
    python -m benchmarks.engine --quick    # a few runs: checks the benchmark works, not the engine

Per-node figures are the wall time of one run of a four-node diamond (A → B, C → D) of no-op
async nodes divided by four, averaged over many runs in one event loop after a warm-up. The
contenders are measured in interleaved rounds, so machine noise hits each of them alike, and
each figure is the median over the rounds of the mean per run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import engine
from benchmarks._common import (
    DIAMOND_DEPS,
    RAGGED_DEPS,
    RAGGED_SLEEP_S,
    SLEEP_S,
    asyncio_diamond,
    bench_kinds,
    dataflow_run,
    generated_definition,
    langgraph_diamond,
    layered_run,
    rollgraph_definition,
)
from benchmarks.define import define_figures
from benchmarks.report import report

__all__ = [
    "Interleaved",
    "efficiency",
    "interleaved",
    "main",
    "measure",
    "per_node_durable",
    "per_node_in_memory",
    "validate_ms",
]

Bench = Callable[[], Awaitable[Any]]
N_NODES = len(DIAMOND_DEPS)
ROUNDS = 15
TARGETS = {  # key → (measured value, threshold, whether the value must be at most the threshold)
    "overhead_within_3x_asyncio": ("overhead_vs_asyncio", 3.0, True),
    "budget_overhead_within_1_1x": ("budget_overhead_vs_none", 1.1, True),
    "overhead_10x_below_langgraph": ("langgraph_vs_overhead", 10.0, False),
    "durable_5x_below_langgraph_sqlite": ("langgraph_sqlite_vs_durable", 5.0, False),
    "parallel_efficiency_le_1_05": ("parallel_efficiency", 1.05, True),
    "ragged_efficiency_le_1_05": ("ragged_efficiency", 1.05, True),
    "validate_under_50ms": ("validate_ms_1000_nodes", 50.0, True),
    "define_yaml_under_150ms": ("define_ms_1000_nodes_yaml", 150.0, True),
    "define_10000_chain_under_10x": ("define_chain_10x_ratio", 10.0, True),
}


class Interleaved:
    """Per-round timings of several benches run in turn, so machine noise hits all of them."""

    def __init__(self, samples: dict[str, list[float]]) -> None:
        self.samples = samples

    def us_per_node(self, name: str) -> float:
        """Median over rounds of the mean run, per diamond node."""
        return statistics.median(self.samples[name]) / N_NODES * 1e6

    def ratio(self, slower: str, faster: str) -> float:
        """Median over rounds of the paired ratio: a burst of noise during one round moves
        both figures of that round, so the pair's ratio survives it."""
        pairs = zip(self.samples[slower], self.samples[faster], strict=True)
        return statistics.median(a / b for a, b in pairs)


async def interleaved(benches: Mapping[str, Bench], runs: int, rounds: int = ROUNDS) -> Interleaved:
    """Warm up, then ``rounds`` rounds of ``runs / rounds`` runs of each bench in turn."""
    per_round = max(1, runs // rounds)
    for bench in benches.values():
        for _ in range(max(5, per_round // 5)):
            await bench()
    samples: dict[str, list[float]] = {name: [] for name in benches}
    for _ in range(rounds):
        for name, bench in benches.items():
            gc.collect()
            start = time.perf_counter()
            for _ in range(per_round):
                await bench()
            samples[name].append((time.perf_counter() - start) / per_round)
    return Interleaved(samples)


def _rollgraph(
    eng: engine.Engine, wf: engine.Workflow, budget: engine.Budget | None = None
) -> Bench:
    async def bench() -> None:
        result = await eng.run(wf, {"x": 1}, budget=budget)
        if result.outputs != {"result": 1}:
            raise RuntimeError(f"rollgraph run {result.status}: {result.error}")

    return bench


def _langgraph(graph: Any, fresh_thread: bool = False) -> Bench:
    async def bench() -> None:
        config = {"configurable": {"thread_id": uuid.uuid4().hex}} if fresh_thread else None
        state = await graph.ainvoke({"x": 1}, config)
        if state["d"] != 1 or len(state["visited"]) != N_NODES:
            raise RuntimeError(f"unexpected LangGraph state {state!r}")

    return bench


async def _asyncio() -> None:
    if await asyncio_diamond(1) != 1:
        raise RuntimeError("the asyncio diamond lost its value")


async def per_node_in_memory(kinds: engine.NodeKinds, runs: int) -> Interleaved:
    """asyncio, rollgraph without a step cache, and LangGraph without a checkpointer."""
    wf = engine.define(rollgraph_definition(DIAMOND_DEPS), kinds=kinds, providers=[])
    eng = engine.Engine(providers=[], kinds=kinds)
    try:
        benches = {"asyncio": _asyncio, "rollgraph": _rollgraph(eng, wf)}
        # Every step admitted against a budget (engine.budget): what budgets cost per node.
        budget = engine.Budget(max_cost_usd=1e6, max_tokens=1e9, max_media_seconds=1e6)
        benches["rollgraph_budget"] = _rollgraph(eng, wf, budget)
        benches["langgraph"] = _langgraph(langgraph_diamond())
        return await interleaved(benches, runs)
    finally:
        await eng.aclose()


async def per_node_durable(kinds: engine.NodeKinds, runs: int) -> Interleaved:
    """rollgraph writing each step through to SQLite, and LangGraph with its SQLite saver: as
    it comes (WAL, ``synchronous=FULL``: an fsync per commit) and with rollgraph's settings (WAL,
    ``synchronous=NORMAL``)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    wf = engine.define(rollgraph_definition(DIAMOND_DEPS), kinds=kinds, providers=[])
    with tempfile.TemporaryDirectory(prefix="rollgraph-bench-") as tmp:
        cache = engine.SQLiteStepCache(Path(tmp, "steps.sqlite"))
        eng = engine.Engine(providers=[], kinds=kinds, cache=cache)
        try:
            async with (
                AsyncSqliteSaver.from_conn_string(str(Path(tmp, "full.sqlite"))) as full,
                AsyncSqliteSaver.from_conn_string(str(Path(tmp, "normal.sqlite"))) as normal,
            ):
                await normal.setup()
                await normal.conn.execute("PRAGMA synchronous=NORMAL")
                benches = {
                    "durable": _rollgraph(eng, wf),  # Engine.run takes a fresh run id each run
                    "langgraph_sqlite": _langgraph(langgraph_diamond(full), fresh_thread=True),
                    "langgraph_sqlite_normal": _langgraph(
                        langgraph_diamond(normal), fresh_thread=True
                    ),
                }
                return await interleaved(benches, runs)
        finally:
            await eng.aclose()


async def efficiency(
    kinds: engine.NodeKinds,
    deps: Mapping[str, tuple[str, ...]],
    seconds: Mapping[str, float],
    critical_s: float,
    reps: int,
) -> dict[str, float]:
    """Wall time over the critical path for rollgraph and for a layer-by-layer scheduler."""
    source = rollgraph_definition(deps, kind="bench.sleep", seconds=seconds)
    wf = engine.define(source, kinds=kinds, providers=[])
    eng = engine.Engine(providers=[], kinds=kinds)
    runners: dict[str, Bench] = {
        "rollgraph": _rollgraph(eng, wf),
        "layered": lambda: layered_run(deps, seconds),
        "dataflow": lambda: dataflow_run(deps, seconds),
    }
    ratios: dict[str, list[float]] = {name: [] for name in runners}
    try:
        for _ in range(reps):
            for name, run in runners.items():
                gc.collect()
                start = time.perf_counter()
                await run()
                ratios[name].append((time.perf_counter() - start) / critical_s)
    finally:
        await eng.aclose()
    return {name: statistics.median(r) for name, r in ratios.items()}


def validate_ms(kinds: engine.NodeKinds, reps: int, n_nodes: int = 1000) -> float:
    """Median milliseconds of ``engine.define`` on a generated ``n_nodes``-node graph.

    Each repetition gets its own node names, so nothing the engine caches between calls (parsed
    references) makes a later repetition cheaper than a user's first ``define``.
    """
    times = []
    for rep in range(reps):
        source = generated_definition(n_nodes, prefix=f"r{rep}_")
        gc.collect()
        start = time.perf_counter()
        wf = engine.define(source, kinds=kinds, providers=[])
        times.append((time.perf_counter() - start) * 1e3)
        if len(wf.nodes) != n_nodes:
            raise RuntimeError(f"the generated graph has {len(wf.nodes)} nodes, not {n_nodes}")
    return statistics.median(times)


async def measure(runs: int, quick: bool = False) -> dict[str, Any]:
    kinds = bench_kinds()
    reps = 2 if quick else 15
    mem = await per_node_in_memory(kinds, runs)
    durable = await per_node_durable(kinds, max(ROUNDS, runs // 4))
    diamond_s = {node: SLEEP_S for node in DIAMOND_DEPS}
    parallel = await efficiency(kinds, DIAMOND_DEPS, diamond_s, 3 * SLEEP_S, reps)
    ragged = await efficiency(kinds, RAGGED_DEPS, RAGGED_SLEEP_S, 4 * SLEEP_S, reps)
    out: dict[str, Any] = {
        "overhead_us_per_node": mem.us_per_node("rollgraph"),
        "asyncio_us_per_node": mem.us_per_node("asyncio"),
        "langgraph_us_per_node": mem.us_per_node("langgraph"),
        "durable_us_per_node": durable.us_per_node("durable"),
        "langgraph_sqlite_us_per_node": durable.us_per_node("langgraph_sqlite"),
        "langgraph_sqlite_normal_us_per_node": durable.us_per_node("langgraph_sqlite_normal"),
        "parallel_efficiency": parallel["rollgraph"],
        "ragged_efficiency": ragged["rollgraph"],
        "ragged_efficiency_layered_baseline": ragged["layered"],
        "parallel_efficiency_layered_baseline": parallel["layered"],
        "ragged_efficiency_dataflow_baseline": ragged["dataflow"],
        "parallel_efficiency_dataflow_baseline": parallel["dataflow"],
        "validate_ms_1000_nodes": validate_ms(kinds, reps if quick else 7),
        **define_figures(kinds, reps=reps if quick else 7, rounds=1 if quick else 3),
    }
    out["overhead_vs_asyncio"] = mem.ratio("rollgraph", "asyncio")
    out["budget_overhead_us_per_node"] = mem.us_per_node("rollgraph_budget")
    out["budget_overhead_vs_none"] = mem.ratio("rollgraph_budget", "rollgraph")
    out["langgraph_vs_overhead"] = mem.ratio("langgraph", "rollgraph")
    out["langgraph_sqlite_vs_durable"] = durable.ratio("langgraph_sqlite", "durable")
    out["langgraph_sqlite_normal_vs_durable"] = durable.ratio("langgraph_sqlite_normal", "durable")
    out["targets"] = {
        name: out[key] <= limit if at_most else out[key] >= limit
        for name, (key, limit, at_most) in TARGETS.items()
    }
    out["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "langgraph": importlib.metadata.version("langgraph"),
    }
    out["notes"] = [
        f"per-node figures: {runs} runs per contender ({runs // ROUNDS} per round, {ROUNDS} "
        f"interleaved rounds, after a warm-up); median over rounds of the mean run / {N_NODES}; "
        "ratios are the median over rounds of each round's paired ratio",
        f"durable figures: {max(ROUNDS, runs // 4)} runs each, same method; rollgraph "
        "SQLiteStepCache and LangGraph AsyncSqliteSaver each on a temp file, a fresh run id / "
        "thread_id per run; LangGraph's saver as it comes fsyncs each commit (WAL, "
        "synchronous=FULL) while rollgraph's cache does not (WAL, synchronous=NORMAL), so "
        "langgraph_sqlite_normal_* repeats it with synchronous=NORMAL: the like-for-like figure",
        f"efficiencies: median of {reps} runs of wall time / critical path "
        f"({3 * SLEEP_S * 1e3:.0f} ms diamond, {4 * SLEEP_S * 1e3:.0f} ms ragged); "
        "the layered baseline gathers each topological layer in plain asyncio (on the diamond "
        "that is optimal); the dataflow baseline is the ideal scheduler by hand in plain "
        "asyncio: what it loses to the critical path is timer slack and machine noise",
        f"validate: median of {reps if quick else 7} engine.define calls on a 1,000-node "
        "chain/diamond mix (no providers)",
        "define: CPU ms of engine.define on YAML text (parsing and every check included): "
        f"median of {reps if quick else 7} on the same 1,000-node mix, and {1 if quick else 3} "
        "interleaved rounds of a 1,000-node chain (median of 3) and a 10,000-node chain, each "
        "declared tail first with names sorting against the flow; the ratio is the median of the "
        "rounds' ratios",
    ]
    if quick:
        out["notes"].append("--quick: too few runs for the numbers to mean anything")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=None, help="diamond runs per contender")
    parser.add_argument("--quick", action="store_true", help="a few runs (smoke test)")
    args = parser.parse_args(argv)
    runs = args.runs or (50 if args.quick else 2000)
    result = asyncio.run(measure(runs, quick=args.quick))
    print(report(result, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
