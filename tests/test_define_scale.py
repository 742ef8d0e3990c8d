"""Defining a workflow is linear and iterative: order, cycles and lines at any size or order.

A chain declared tail first, with names sorting against the flow, once made the topological sort
quadratic and the cycle search recurse a level per node; YAML is read with libyaml when PyYAML
has it, and the pure-Python parser otherwise, with the same lines either way.
"""

from __future__ import annotations

import random
import textwrap

import pytest
import yaml

import engine
from benchmarks.define import reversed_chain_definition
from engine import sourcemap
from engine.graph import find_cycles, topological_order
from engine.spec import load_spec

BIG = engine.Limits(max_nodes=10_000, max_edges=20_000)


def _chain_text(n_nodes: int) -> str:
    return yaml.safe_dump(reversed_chain_definition(n_nodes), sort_keys=False)


def _kinds() -> engine.NodeKinds:
    from benchmarks._common import bench_kinds

    return bench_kinds()


def test_a_10000_node_chain_declared_in_reverse_defines_in_flow_order() -> None:
    wf = engine.define(_chain_text(10_000), kinds=_kinds(), providers=[], limits=BIG)
    assert len(wf.order) == 10_000
    # Position 0 (the head, read by everything after it) has the largest name.
    assert wf.order[0] == "c9999" and wf.order[-1] == "c0000"
    position = {node: i for i, node in enumerate(wf.order)}
    for node in wf.nodes.values():
        assert all(position[dep] < position[node.id] for dep in node.deps)
        assert all(position[c] > position[node.id] for c in node.consumers)


def test_a_cycle_at_the_far_end_of_a_long_chain_is_named() -> None:
    definition = reversed_chain_definition(5_000)
    # The head (c4999) now reads the tail's neighbour c0001: a loop through the whole chain
    # would be 5,000 names long, so close a short one deep down instead: c0002 → c0001 → c0002.
    definition["nodes"]["c0002"]["with"]["y"] = "${c0001.out}"
    problems = engine.check(definition, kinds=_kinds(), providers=[], limits=BIG)
    cycles = [p for p in problems if p.code == "cycle"]
    assert [(p.location, p.message) for p in cycles] == [
        ("nodes.c0001", "cycle: c0001 → c0002 → c0001; a graph cannot loop")
    ]


def test_a_cycle_through_the_whole_reversed_chain_is_reported_once() -> None:
    definition = reversed_chain_definition(3_000)
    definition["nodes"]["c2999"]["with"]["x"] = "${c0000.out}"  # the head reads the tail
    problems = engine.check(definition, kinds=_kinds(), providers=[], limits=BIG)
    (cycle,) = [p for p in problems if p.code == "cycle"]
    names = cycle.message.removeprefix("cycle: ").removesuffix("; a graph cannot loop")
    hops = names.split(" → ")
    assert len(hops) == 3_001 and hops[0] == hops[-1] == "c0000"
    assert hops[1] == "c2999"  # data-flow order: the tail feeds the head


@pytest.mark.parametrize("seed", range(40))
def test_topological_order_respects_every_edge_whatever_the_declaration_order(seed: int) -> None:
    rng = random.Random(seed)
    n_nodes = rng.randint(1, 120)
    rank = list(range(n_nodes))
    rng.shuffle(rank)  # a hidden flow order: edges only go from lower to higher rank
    names = [f"n{rng.randrange(10**6)}_{i}" for i in range(n_nodes)]
    deps: dict[str, set[str]] = {name: set() for name in names}
    for i, name in enumerate(names):
        earlier = [names[j] for j in range(n_nodes) if rank[j] < rank[i]]
        for _ in range(rng.randint(0, 4)):
            if earlier:
                deps[name].add(rng.choice(earlier))
    declared = names[:]
    rng.shuffle(declared)
    assert find_cycles(deps) == []
    order = topological_order(deps, declared)
    assert sorted(order) == sorted(names)
    position = {node: i for i, node in enumerate(order)}
    for node, reads in deps.items():
        for dep in reads:
            assert position[dep] < position[node], (dep, node)
    assert order == _sweeps(deps, declared)  # the same order as before it was made linear


def _sweeps(deps: dict[str, set[str]], declared: list[str]) -> list[str]:
    """The order as it was first computed: sweep the declared list until nothing is placed."""
    order: list[str] = []
    pending = list(declared)
    while pending:
        rest = []
        for node in pending:
            if deps[node] <= set(order):
                order.append(node)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            break
        pending = rest
    return order


def test_ties_keep_their_declared_order() -> None:
    deps = {"z": set(), "b": {"z"}, "a": set(), "y": {"a"}, "c": {"y"}}
    # First sweep places z and a; the second y then b, as declared; the third c.
    assert topological_order(deps, ["c", "y", "b", "z", "a"]) == ["z", "a", "y", "b", "c"]


def test_nodes_on_or_after_a_cycle_are_left_out_of_the_order() -> None:
    deps = {"a": set(), "b": {"a", "c"}, "c": {"b"}, "d": {"c"}, "e": {"a"}}
    assert topological_order(deps, list(deps)) == ["a", "e"]
    assert find_cycles(deps) == [["b", "c", "b"]]


SOURCE = textwrap.dedent(
    """\
    name: lines
    inputs:
      x: json
    nodes:
      first:
        uses: template
        with: {text: "${inputs.x}"}
      second:
        uses: template
        with:
          text: "${frist.text}"
    outputs:
      out: "${second.text}"
    """
)


@pytest.mark.parametrize("loader", ["libyaml", "pure-python"])
def test_problems_name_their_line_with_either_yaml_parser(
    loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if loader == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml")
        assert sourcemap._Loader.__name__ == "CSafeLoader"  # the fast parser is in use
    else:
        monkeypatch.setattr(sourcemap, "_Loader", yaml.SafeLoader)
    _, smap = load_spec(SOURCE)
    assert smap.line("nodes.second") == 8
    assert smap.line("nodes.second.with.text") == 11
    (problem,) = [p for p in engine.check(SOURCE) if p.severity == "error"]
    assert (problem.code, problem.location, problem.line) == (
        "unknown_node",
        "nodes.second.with.text",
        11,
    )
    assert "did you mean first" in problem.message


def test_define_pauses_the_collector_and_restores_it_even_when_the_definition_is_bad() -> None:
    import gc

    from engine.gc_pause import collector_paused

    assert gc.isenabled()
    with pytest.raises(engine.DefinitionError):
        engine.define("name: [unclosed")
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested (or on another thread): still paused inside
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:  # a caller that switched it off keeps it off
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def _typed(value: object) -> object:
    """``value`` with every scalar's type spelled out, so ``1 == True`` cannot pass for equal."""
    if isinstance(value, dict):
        return [(_typed(k), _typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x {b: 1, c: [1, 2.5, true, null, ~, 0x1f, 1e3, .inf, 2001-12-14]}\nd: *x\n",
        "base: &m {a: 1}\nmerged: {<<: *m, b: 2}\nmany: {<<: [*m], c: 3}\n",
        "? !!binary aGVsbG8=\n: 1\n1: one\ntrue: t\n~: n\n2001-01-01: d\n'=': eq\n",
        "s: !!set {a, b}\no: !!omap [a: 1, b: 2]\np: !!pairs [a: 1, a: 2]\n",
        "k: !!str 123\nv: !!int '7'\nq: 'quoted'\nb: |\n  block\nf: >\n  folded\n",
        "- a\n- [b, {c: d}]\n- !!seq [1]\n- !!map {k: v}\n",
    ],
)
def test_built_data_is_what_the_yaml_constructor_makes(text: str) -> None:
    fast = sourcemap._Loader(text)
    slow = sourcemap._Loader(text)
    try:
        root = fast.get_single_node()
        assert root is not None
        built = sourcemap._build(root, fast, {})
        constructed = slow.construct_document(slow.get_single_node())
    finally:
        fast.dispose()
        slow.dispose()
    assert _typed(built) == _typed(constructed)


@pytest.mark.parametrize("text", ["? [a]\n: 1\n", "a: =\n", "a: !custom x\n"])
def test_what_the_constructor_refuses_is_still_a_syntax_problem(text: str) -> None:
    with pytest.raises(engine.DefinitionError) as err:
        load_spec(text)
    assert [p.code for p in err.value.problems] == ["syntax"]


def test_an_alias_is_the_same_object_as_its_anchor() -> None:
    data, _, problems = sourcemap.SourceMap.parse("a: &r [1]\nb: *r\n")
    assert problems == [] and data["a"] is data["b"]
