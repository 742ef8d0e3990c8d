"""The workloads of ``benchmarks.engine``: the same small graphs written four ways.

- rollgraph definitions over two private kinds (``bench.noop``, ``bench.sleep``);
- plain asyncio: the diamond by hand (the floor) and a layer-by-layer scheduler (the strawman);
- LangGraph: the diamond as a ``StateGraph``, with or without a checkpointer;
- a generated 1,000-node definition for define-time checks.

Nothing here measures time; ``benchmarks.engine`` does.
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, TypedDict

import engine

__all__ = [
    "DIAMOND_DEPS",
    "RAGGED_DEPS",
    "RAGGED_SLEEP_S",
    "SLEEP_S",
    "asyncio_diamond",
    "bench_kinds",
    "dataflow_run",
    "generated_definition",
    "langgraph_diamond",
    "layered_run",
    "rollgraph_definition",
]

SLEEP_S = 0.05
# Node → its dependencies, in a topological order.
DIAMOND_DEPS: dict[str, tuple[str, ...]] = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
RAGGED_DEPS: dict[str, tuple[str, ...]] = {
    "a": (),
    "b": ("a",),
    "b2": ("b",),
    "c": ("a",),
    "d": ("b2", "c"),
}
RAGGED_SLEEP_S = {"a": SLEEP_S, "b": SLEEP_S, "b2": SLEEP_S, "c": 2 * SLEEP_S, "d": SLEEP_S}


# -- rollgraph ---------------------------------------------------------------------------------
def bench_kinds() -> engine.NodeKinds:
    """Private node kinds with the benchmark kinds, so the default ones stay untouched."""
    kinds = engine.NodeKinds(load_entry_points=False)
    two_inputs: dict[str, str | engine.Param] = {"x": "json", "y": engine.Param.optional("json")}

    @engine.node_kind("bench.noop", inputs=two_inputs, outputs={"out": "json"}, kinds=kinds)
    async def noop(ctx: engine.NodeContext, params: dict[str, Any]) -> dict[str, Any]:
        return {"out": params["x"]}

    @engine.node_kind(
        "bench.sleep",
        inputs={**two_inputs, "seconds": engine.Param.optional("number", SLEEP_S)},
        outputs={"out": "json"},
        kinds=kinds,
    )
    async def sleep(ctx: engine.NodeContext, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(params["seconds"])
        return {"out": params["x"]}

    return kinds


def rollgraph_definition(
    deps: Mapping[str, tuple[str, ...]],
    kind: str = "bench.noop",
    seconds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A definition of a graph with at most two dependencies per node; the last is the output."""
    nodes: dict[str, Any] = {}
    for node, parents in deps.items():
        refs = [f"${{{p}.out}}" for p in parents] or ["${inputs.x}"]
        params: dict[str, Any] = dict(zip(("x", "y"), refs, strict=False))
        if seconds is not None:
            params["seconds"] = seconds[node]
        nodes[node] = {"uses": kind, "with": params}
    last = list(deps)[-1]
    return {
        "name": "bench",
        "inputs": {"x": "json"},
        "nodes": nodes,
        "outputs": {"result": f"${{{last}.out}}"},
    }


def generated_definition(n_nodes: int = 1000, prefix: str = "n") -> dict[str, Any]:
    """``n_nodes`` no-op nodes: diamonds and 4-node chains, alternating, each fed by the last."""
    deps: dict[str, tuple[str, ...]] = {}
    tail: str | None = None
    for block in range(n_nodes // 4):
        a, b, c, d = (f"{prefix}{block * 4 + i}" for i in range(4))
        head: tuple[str, ...] = (tail,) if tail else ()
        if block % 2 == 0:
            deps.update({a: head, b: (a,), c: (a,), d: (b, c)})
        else:
            deps.update({a: head, b: (a,), c: (b,), d: (c,)})
        tail = d
    return rollgraph_definition(deps)


# -- plain asyncio -----------------------------------------------------------------------------
async def _noop(x: Any, y: Any = None) -> Any:
    return x


async def asyncio_diamond(x: Any) -> Any:
    """The floor: A awaited, then B and C as tasks, then D."""
    a = await _noop(x)
    b = asyncio.create_task(_noop(a))
    c = asyncio.create_task(_noop(a))
    return await _noop(await b, await c)


def _layers(deps: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    depth: dict[str, int] = {}
    for node, parents in deps.items():  # deps is in topological order
        depth[node] = 1 + max((depth[p] for p in parents), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for node, level in depth.items():
        layers[level].append(node)
    return layers


async def layered_run(deps: Mapping[str, tuple[str, ...]], seconds: Mapping[str, float]) -> None:
    """The strawman: run each topological layer with ``gather`` and wait for all of it."""
    for layer in _layers(deps):
        await asyncio.gather(*(asyncio.sleep(seconds[node]) for node in layer))


async def dataflow_run(deps: Mapping[str, tuple[str, ...]], seconds: Mapping[str, float]) -> None:
    """The ideal by hand: each node a task that waits for its own parents only. What it loses
    to the critical path is timer slack and machine noise, not scheduling."""
    tasks: dict[str, asyncio.Task[None]] = {}

    async def node(name: str) -> None:
        await asyncio.gather(*(tasks[parent] for parent in deps[name]))
        await asyncio.sleep(seconds[name])

    for name in deps:  # deps is in topological order, so parents' tasks exist
        tasks[name] = asyncio.create_task(node(name))
    await asyncio.gather(*tasks.values())


# -- LangGraph ---------------------------------------------------------------------------------
class DiamondState(TypedDict, total=False):
    x: Any
    a: Any
    b: Any
    c: Any
    d: Any
    visited: Annotated[list[str], operator.add]  # b and c both append in the same step


def _lg_node(name: str, reads: tuple[str, ...]) -> Callable[[DiamondState], Awaitable[Any]]:
    async def node(state: DiamondState) -> dict[str, Any]:
        return {name: state[reads[0]], "visited": [name]}  # type: ignore[literal-required]

    return node


def langgraph_diamond(checkpointer: Any = None) -> Any:
    """START → a → (b, c) → d → END with async nodes; compiled, ready for ``ainvoke``."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(DiamondState)
    for name, parents in DIAMOND_DEPS.items():
        graph.add_node(name, _lg_node(name, parents or ("x",)))  # type: ignore[call-overload]
    graph.add_edge(START, "a")
    for name, parents in DIAMOND_DEPS.items():
        for parent in parents:
            graph.add_edge(parent, name)
    graph.add_edge("d", END)
    return graph.compile(checkpointer=checkpointer)
