"""Property tests of the executor over random DAGs: dataflow order, exactly-once, resume.

Each generated graph has nodes ``n0 … n{k-1}``; node ``i`` depends on a random subset of the
nodes before it (so index order is a topological order the test knows independently of the
engine), and the definition lists the nodes in a random order so the engine has to sort them
itself. Every node uses the test kind ``t.join`` whose ``parts`` parameter lists a reference to
each dependency's output followed by the node's own name.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

COST_PER_CALL = 1.0


@dataclass(frozen=True)
class Graph:
    deps: tuple[tuple[int, ...], ...]  # deps[i]: indices (all < i) node i reads
    declared: tuple[int, ...]  # the order the nodes are written in the definition
    delays_ms: tuple[int, ...]  # per node, how long the kind sleeps (0 = does not sleep)

    @property
    def size(self) -> int:
        return len(self.deps)

    @staticmethod
    def name(i: int) -> str:
        return f"n{i}"

    def descendants(self, root: int) -> set[int]:
        found = {root}
        for i in range(root + 1, self.size):
            if any(d in found for d in self.deps[i]):
                found.add(i)
        found.discard(root)
        return found


@st.composite
def graphs(draw: st.DrawFn, *, max_nodes: int = 25, max_delay_ms: int = 0) -> Graph:
    n = draw(st.integers(min_value=1, max_value=max_nodes))
    deps: list[tuple[int, ...]] = []
    for i in range(n):
        if i == 0:
            deps.append(())
            continue
        # Some nodes are extra roots; the others read a random subset of earlier nodes.
        if draw(st.integers(0, 3)) == 0:
            deps.append(())
        else:
            chosen = draw(st.sets(st.integers(0, i - 1), min_size=1, max_size=min(i, 6)))
            deps.append(tuple(sorted(chosen)))
    declared = tuple(draw(st.permutations(range(n))))
    delays = tuple(
        draw(st.lists(st.integers(0, max_delay_ms), min_size=n, max_size=n))
        if max_delay_ms
        else [0] * n
    )
    return Graph(tuple(deps), declared, delays)


def combine(parts: list[Any]) -> str:
    """What ``t.join`` computes: deterministic, order-sensitive, fixed size at any depth."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expected_outputs(graph: Graph) -> dict[str, str]:
    """Evaluate the graph sequentially in index order, without the engine."""
    outs: dict[int, str] = {}
    for i in range(graph.size):
        parts: list[Any] = [outs[d] for d in graph.deps[i]]
        parts.append(graph.name(i))
        outs[i] = combine(parts)
    return {f"o_{graph.name(i)}": outs[i] for i in range(graph.size)}


def definition(graph: Graph) -> dict[str, Any]:
    nodes = {}
    for i in graph.declared:
        parts: list[str] = [f"${{{graph.name(d)}.out}}" for d in graph.deps[i]]
        parts.append(graph.name(i))
        nodes[graph.name(i)] = {"uses": "t.join", "with": {"parts": parts}}
    return {
        "name": "random-dag",
        "nodes": nodes,
        "outputs": {f"o_{graph.name(i)}": f"${{{graph.name(i)}.out}}" for i in range(graph.size)},
    }


@dataclass
class Harness:
    """Private node kinds with ``t.join``, recording every call and its start/finish order."""

    graph: Graph
    fail_node: str | None = None
    calls: list[str] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    kinds: engine.NodeKinds = field(init=False)

    def __post_init__(self) -> None:
        self.kinds = engine.NodeKinds(load_entry_points=False)
        delays = {self.graph.name(i): d for i, d in enumerate(self.graph.delays_ms)}

        @engine.node_kind(
            "t.join",
            inputs={"parts": "json"},
            outputs={"out": "json"},
            kinds=self.kinds,
        )
        async def join(ctx: engine.NodeContext, params: dict[str, Any]) -> engine.NodeResult:
            node = ctx.node
            self.calls.append(node)
            self.events.append(("start", node))
            if delays[node]:
                await asyncio.sleep(delays[node] / 1000)
            if node == self.fail_node:
                self.events.append(("fail", node))
                raise engine.NodeError(f"{node} fails for good", retryable=False, code="boom")
            self.events.append(("finish", node))
            return engine.NodeResult({"out": combine(params["parts"])}, cost_usd=COST_PER_CALL)

    def workflow(self) -> engine.Workflow:
        return engine.define(definition(self.graph), kinds=self.kinds, providers=[])

    def engine(self, cache: engine.StepCache | None = None) -> engine.Engine:
        return engine.Engine(kinds=self.kinds, providers=[], cache=cache)


def assert_dataflow_order(
    graph: Graph, events: list[tuple[str, str]], done_before: frozenset[str] = frozenset()
) -> None:
    """Each dependency's finish precedes its consumer's start (``done_before``: from cache)."""
    position = {event: index for index, event in enumerate(events)}
    for i in range(graph.size):
        start = position.get(("start", graph.name(i)))
        if start is None:
            continue
        for d in graph.deps[i]:
            if graph.name(d) in done_before:
                continue
            finish = position.get(("finish", graph.name(d)))
            assert finish is not None, (
                f"{graph.name(i)} started, its input {graph.name(d)} never finished"
            )
            assert finish < start, (
                f"{graph.name(i)} started before its input {graph.name(d)} finished"
            )


def run_once(graph: Graph) -> tuple[Harness, engine.RunResult]:
    harness = Harness(graph)

    async def go() -> engine.RunResult:
        async with harness.engine() as eng:
            return await eng.run(harness.workflow(), {})

    return harness, asyncio.run(go())


def check_complete_run(graph: Graph, harness: Harness, result: engine.RunResult) -> None:
    names = [graph.name(i) for i in range(graph.size)]
    assert result.status == "succeeded", result.error
    assert Counter(harness.calls) == Counter(names), "every node runs exactly once"
    assert_dataflow_order(graph, harness.events)
    assert result.outputs == expected_outputs(graph)
    steps = result.trace.steps
    assert set(steps) == set(names)
    assert all(s.status == "succeeded" and s.attempts == 1 for s in steps.values())
    assert all(not s.cache_hit for s in steps.values())
    assert result.trace.cost_usd == graph.size * COST_PER_CALL


# -- the properties ------------------------------------------------------------------------------


@SETTINGS
@given(graphs())
def test_every_node_runs_once_after_its_inputs(graph: Graph) -> None:
    harness, result = run_once(graph)
    check_complete_run(graph, harness, result)


@SETTINGS
@given(graphs())
def test_outputs_equal_sequential_evaluation(graph: Graph) -> None:
    harness, result = run_once(graph)
    assert result.outputs == expected_outputs(graph)
    wf = harness.workflow()
    # The engine's own order is a topological order of the same graph.
    order: dict[str, int] = {name: index for index, name in enumerate(wf.order)}
    assert sorted(order) == sorted(graph.name(i) for i in range(graph.size))
    for i in range(graph.size):
        for d in graph.deps[i]:
            assert order[graph.name(d)] < order[graph.name(i)]
        assert wf.nodes[engine.NodeId(graph.name(i))].deps == {graph.name(d) for d in graph.deps[i]}


def max_in_flight(events: list[tuple[str, str]]) -> int:
    running, peak = 0, 0
    for what, _ in events:
        running += 1 if what == "start" else -1
        peak = max(peak, running)
    return peak


@SETTINGS
@given(graphs(max_delay_ms=3))
def test_dataflow_order_holds_under_concurrency(graph: Graph) -> None:
    harness, result = run_once(graph)
    check_complete_run(graph, harness, result)
    # Independent branches overlap: two roots that both sleep are in flight together.
    sleeping_roots = [i for i in range(graph.size) if not graph.deps[i] and graph.delays_ms[i]]
    if len(sleeping_roots) >= 2:
        assert max_in_flight(harness.events) >= 2


@SETTINGS
@given(graphs(max_delay_ms=3), st.data())
def test_resume_reexecutes_only_what_did_not_complete(graph: Graph, data: st.DataObject) -> None:
    fail_index = data.draw(st.integers(0, graph.size - 1), label="fail_index")
    fail_node = graph.name(fail_index)
    names = {graph.name(i) for i in range(graph.size)}
    harness = Harness(graph, fail_node=fail_node)
    wf = harness.workflow()
    cache = engine.MemoryStepCache()

    async def go() -> tuple[engine.RunResult, list[str], engine.RunResult]:
        eng = harness.engine(cache)  # not closed between runs: aclose() would clear the cache
        first = await eng.run(wf, {})
        first_calls = list(harness.calls)
        harness.fail_node = None
        harness.calls.clear()
        harness.events.clear()
        second = await eng.resume(wf, first.run_id, {})
        await eng.aclose()
        return first, first_calls, second

    first, first_calls, second = asyncio.run(go())

    # The first run fails on the chosen node, and nothing downstream of it ever started.
    assert first.status == "failed"
    assert first.outputs is None
    assert fail_node in (first.error or "")
    assert first.trace.steps[fail_node].status == "failed"
    assert first.trace.steps[fail_node].error_code == "boom"
    downstream = {graph.name(i) for i in graph.descendants(fail_index)}
    assert not downstream & set(first_calls)
    assert Counter(first_calls)[fail_node] == 1
    assert all(c == 1 for c in Counter(first_calls).values())
    completed = {n for n, s in first.trace.steps.items() if s.status == "succeeded"}
    assert fail_node not in completed
    assert not downstream & completed
    assert first.trace.cost_usd == len(completed) * COST_PER_CALL
    for name, step in first.trace.steps.items():
        if name not in completed and name != fail_node:
            assert step.status == "cancelled", (name, step.status)

    # The resumed run executes exactly the nodes that had not completed, once each.
    assert second.status == "succeeded", second.error
    assert second.run_id == first.run_id
    assert second.trace.resumed is True
    assert Counter(harness.calls) == Counter(names - completed)
    assert_dataflow_order(graph, harness.events, frozenset(completed))
    assert second.outputs == expected_outputs(graph)
    for name, step in second.trace.steps.items():
        assert step.status == "succeeded"
        if name in completed:
            assert step.cache_hit is True, name
            assert step.cost_usd == 0
            assert step.cost_saved_usd == COST_PER_CALL
        else:
            assert step.cache_hit is False, name
            assert step.cost_usd == COST_PER_CALL
    assert second.trace.cost_usd == len(names - completed) * COST_PER_CALL
    assert second.trace.cost_saved_usd == len(completed) * COST_PER_CALL
