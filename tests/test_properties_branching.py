"""Property tests of conditions and ``switch`` over random DAGs (``tests.test_properties``'s).

On top of a random graph, some nodes get a random ``when`` (comparisons of a dependency's
number joined by ``and``/``or``/``not``), and a switch reads one node's number and routes to
branch heads picked so that no node needs two cases. A sequential evaluation in index order,
written here without the engine, says which nodes run, which are skipped and why, and what
every output is; the engine must agree, run each step at most once and after its inputs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

import engine
from tests.test_properties import SETTINGS, Graph, assert_dataflow_order, combine, graphs

OPS = ("==", "!=", "<", "<=", ">", ">=")
MODULUS = 8  # numbers are 0..7, so comparisons and value matches both hold often

# A condition: ("cmp", op, dep, k) | ("not", c) | ("and"|"or", c, c)
Cond = tuple[Any, ...]


def number(out: str) -> int:
    return int(out[:8], 16) % MODULUS


def compare(op: str, a: int, b: int) -> bool:
    return {
        "==": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def render(cond: Cond) -> str:
    if cond[0] == "cmp":
        return f"${{n{cond[2]}.num}} {cond[1]} {cond[3]}"
    if cond[0] == "not":
        return f"not ({render(cond[1])})"
    return f"({render(cond[1])}) {cond[0]} ({render(cond[2])})"


def holds(cond: Cond, nums: dict[int, int]) -> bool:
    if cond[0] == "cmp":
        return compare(cond[1], nums[cond[2]], cond[3])
    if cond[0] == "not":
        return not holds(cond[1], nums)
    if cond[0] == "and":
        return holds(cond[1], nums) and holds(cond[2], nums)
    return holds(cond[1], nums) or holds(cond[2], nums)


def reads(cond: Cond) -> set[int]:
    if cond[0] == "cmp":
        return {cond[2]}
    return set().union(*(reads(c) for c in cond[1:]))


def conditions(deps: tuple[int, ...], depth: int = 2) -> st.SearchStrategy[Cond]:
    leaf = st.tuples(
        st.just("cmp"), st.sampled_from(OPS), st.sampled_from(deps), st.integers(-1, MODULUS)
    )
    if depth == 0:
        return leaf
    inner = conditions(deps, depth - 1)
    return st.one_of(
        leaf,
        st.tuples(st.just("not"), inner),
        st.tuples(st.sampled_from(["and", "or"]), inner, inner),
    )


@dataclass(frozen=True)
class Routed:
    graph: Graph
    whens: dict[int, Cond]
    source: int | None  # the node whose number the switch reads (None: no switch)
    by_value: bool  # cases match the number (value:) instead of testing it (when:)
    cases: tuple[tuple[str, int, tuple[int, ...]], ...]  # (name, threshold or match, heads)
    default: tuple[int, ...]

    @property
    def heads(self) -> dict[int, str]:
        out = {h: name for name, _, hs in self.cases for h in hs}
        out.update({h: "default" for h in self.default})
        return out


@st.composite
def routed(draw: st.DrawFn) -> Routed:
    graph = draw(graphs(max_nodes=18, max_delay_ms=2))
    whens = {}
    for i in range(graph.size):
        if graph.deps[i] and draw(st.integers(0, 5)) == 0:
            whens[i] = draw(conditions(graph.deps[i]))
    # Mostly a switch, reading an early node so that it has nodes after it to route to.
    source = draw(st.integers(0, graph.size // 2)) if draw(st.integers(0, 4)) else None
    cases: list[tuple[str, int, tuple[int, ...]]] = []
    default: tuple[int, ...] = ()
    if source is not None:
        # Heads whose descendants are disjoint: no node then needs two cases.
        candidates = draw(st.permutations(range(source + 1, graph.size)))
        claimed: set[int] = set()
        groups: list[list[int]] = [[] for _ in range(draw(st.integers(2, 4)))]
        for head in candidates:
            reach = {head} | graph.descendants(head)
            if reach & claimed or draw(st.integers(0, 3)) == 0:
                continue
            claimed |= reach
            groups[draw(st.integers(0, len(groups) - 1))].append(head)
        values = draw(
            st.lists(st.integers(0, MODULUS), min_size=len(groups) - 1, max_size=len(groups) - 1)
        )
        cases = [(f"c{k}", v, tuple(groups[k])) for k, v in enumerate(values)]
        default = tuple(groups[-1])
    return Routed(graph, whens, source, draw(st.booleans()), tuple(cases), default)


def definition(r: Routed) -> dict[str, Any]:
    g = r.graph
    nodes: dict[str, Any] = {}
    for i in g.declared:
        parts: list[str] = [f"${{n{d}.out}}" for d in g.deps[i]]
        parts.append(g.name(i))
        nodes[g.name(i)] = {"uses": "t.join", "with": {"parts": parts}}
        if i in r.whens:
            nodes[g.name(i)]["when"] = render(r.whens[i])
    outputs = {f"o_n{i}": f"${{n{i}.out}}" for i in range(g.size)}
    if r.source is not None:
        value = f"${{n{r.source}.num}}"
        cases = {}
        for name, v, heads in r.cases:
            then = [g.name(h) for h in heads]
            cases[name] = (
                {"match": v, "then": then}
                if r.by_value
                else {"when": f"{value} < {v}", "then": then}
            )
        nodes["sw"] = {
            "uses": "switch",
            "with": {
                **({"value": value} if r.by_value else {}),
                "cases": cases,
                "default": [g.name(h) for h in r.default],
            },
        }
        outputs["case"] = "${sw.case}"
    return {"name": "routed-dag", "nodes": nodes, "outputs": outputs}


def reference(r: Routed) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """Outputs, and for each skipped node the reasons it may give, evaluated in index order.

    A node with several skipped inputs names whichever was released first, so any of them."""
    g = r.graph
    outs: dict[int, str] = {}
    reasons: dict[str, set[str]] = {}
    chosen: str | None = None
    heads = r.heads
    for i in range(g.size):
        name = g.name(i)
        upstream = {f"upstream {g.name(d)!r} was skipped" for d in g.deps[i] if d not in outs}
        if i in heads and chosen is None:
            upstream.add("upstream 'sw' was skipped")
        if upstream:
            reasons[name] = upstream
        elif i in heads and heads[i] != chosen:
            reasons[name] = {f"switch 'sw' chose case {chosen!r}, not {heads[i]!r}"}
        elif i in r.whens and not holds(
            r.whens[i], {d: number(outs[d]) for d in reads(r.whens[i])}
        ):
            reasons[name] = {f"when {render(r.whens[i])!r} is false"}
        else:
            outs[i] = combine([*(outs[d] for d in g.deps[i]), name])
        if i == r.source:  # the switch runs right after the node it reads
            chosen = None
            if i in outs:
                n = number(outs[i])
                matching = (c for c, v, _ in r.cases if (n == v if r.by_value else n < v))
                chosen = next(matching, "default")
    outputs: dict[str, Any] = {f"o_n{i}": outs.get(i) for i in range(g.size)}
    if r.source is not None:
        outputs["case"] = chosen
    return outputs, reasons


@dataclass
class Recorder:
    calls: list[str] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)

    def kinds(self, graph: Graph) -> engine.NodeKinds:
        kinds = engine.default_kinds.copy()
        delays = {graph.name(i): d for i, d in enumerate(graph.delays_ms)}

        @engine.node_kind(
            "t.join",
            inputs={"parts": "json"},
            outputs={"out": "json", "num": "integer"},
            kinds=kinds,
        )
        async def join(ctx: engine.NodeContext, params: dict[str, Any]) -> dict[str, Any]:
            self.calls.append(ctx.node)
            self.events.append(("start", ctx.node))
            if delays[ctx.node]:
                await asyncio.sleep(delays[ctx.node] / 1000)
            self.events.append(("finish", ctx.node))
            out = combine(params["parts"])
            return {"out": out, "num": number(out)}

        return kinds


@SETTINGS
@given(routed())
def test_conditions_and_switches_agree_with_a_sequential_evaluation(r: Routed) -> None:
    recorder = Recorder()
    kinds = recorder.kinds(r.graph)

    async def go() -> engine.RunResult:
        async with engine.Engine(kinds=kinds, providers=[]) as eng:
            return await eng.run(eng.define(definition(r)), {})

    result = asyncio.run(go())
    expected, reasons = reference(r)
    assert result.status == "succeeded", result.error
    assert result.outputs == expected
    ran = {r.graph.name(i) for i in range(r.graph.size)} - set(reasons)
    # Each step at most once, exactly the ones that were not skipped, after its inputs.
    assert Counter(recorder.calls) == Counter(ran)
    assert_dataflow_order(r.graph, recorder.events)
    steps = result.trace.steps
    for name in ran:
        assert steps[name].status == "succeeded", name
    for name, reason in reasons.items():
        assert steps[name].status == "skipped", name
        assert steps[name].reason in reason, (name, steps[name].reason, reason)
    event(f"skipped: {len(reasons) > 0}, switch: {r.source is not None}, whens: {len(r.whens) > 0}")
    if any("switch 'sw' chose" in next(iter(why)) for why in reasons.values()):
        event("an unchosen branch head skipped by the switch")
    if r.source is not None:
        skipped_source = r.graph.name(r.source) in reasons
        assert steps["sw"].status == ("skipped" if skipped_source else "succeeded")


@SETTINGS
@given(graphs(max_nodes=14), st.data())
def test_a_node_needing_two_cases_is_refused_exactly_when_one_exists(
    graph: Graph, data: st.DataObject
) -> None:
    heads = data.draw(
        st.dictionaries(st.integers(1, max(1, graph.size - 1)), st.sampled_from(["a", "b"])),
        label="heads",
    )
    heads = {h: c for h, c in heads.items() if h < graph.size}
    needs: list[set[str]] = []
    for i in range(graph.size):
        cases = {heads[i]} if i in heads else set()
        needs.append(cases.union(*(needs[d] for d in graph.deps[i])))
    conflict = any(len(cases) > 1 for cases in needs)
    r = Routed(
        graph,
        {},
        0,
        True,
        (("a", 1, tuple(h for h, c in heads.items() if c == "a")),),
        tuple(h for h, c in heads.items() if c == "b"),
    )
    codes = [p.code for p in engine.check(definition(r), kinds=Recorder().kinds(graph))]
    assert ("branch_conflict" in codes) == conflict, (heads, codes)
