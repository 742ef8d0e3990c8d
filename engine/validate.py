"""Define-time checks: every problem of a graph found at once, then the graph compiled.

Checks, each with a stable code: unknown node kind (``unknown_kind``), unknown or missing
parameter (``unknown_param``, ``missing_param``), a literal of the wrong type (``bad_value``), a
reference to a missing node, input or output with a suggestion (``unknown_node``,
``unknown_input``, ``unknown_output``), a type mismatch along an edge (``type_mismatch``,
``not_interpolatable``), an unusable model (``bad_model``), a cycle naming its path (``cycle``),
and, as a warning, a node whose result reaches no output (``unused_node``).

This module runs the phases in order: inputs, nodes, outputs, then the graph as a whole, and
links the result into a ``Workflow`` only when no problem is an error. The checks themselves
live in ``engine.typecheck`` (references and parameters), ``engine.map_plan`` (``map`` nodes),
``engine.branching`` (``switch`` and ``coalesce``) and ``engine.graph`` (cycles, order,
reachability).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from engine.branching import COALESCE_KIND, SWITCH_KIND, Branches, plan_branches
from engine.criteria import check_criteria
from engine.errors import Problem
from engine.evaluator_spec import check_evaluators
from engine.fallbacks import check_fallback_models
from engine.graph import consumers_of, find_cycles, reaching, topological_order
from engine.limits import Limits
from engine.map_plan import compile_map
from engine.node_kinds import NodeKind, NodeKinds, Param
from engine.param_checks import check_literals
from engine.providers.base import Provider
from engine.ranges import Range
from engine.refs import Resolver, compile_value, iter_refs
from engine.spec import FallbackSpec, NodeSpec, WorkflowSpec
from engine.typecheck import JSON, MAP_KIND, RESERVED, TEXT, CheckedParams, Checker
from engine.types import ValueType, parse_type
from engine.workflow import CompiledNode, MapPlan, NodeId, Workflow, suggest

__all__ = ["compile_workflow"]


@dataclass(slots=True)
class _Outputs:
    """The workflow's declared outputs, compiled."""

    resolvers: list[tuple[str, Resolver | None, Any]] = field(default_factory=list)
    types: dict[str, ValueType] = field(default_factory=dict)
    deps: set[str] = field(default_factory=set)


def compile_workflow(
    spec: WorkflowSpec,
    *,
    kinds: NodeKinds,
    providers: Mapping[str, Provider],
    limits: Limits | None = None,
) -> tuple[Workflow | None, list[Problem]]:
    """Check a workflow and compile it; no workflow when any of the problems is an error."""
    checker = Checker(spec, kinds, providers, limits or Limits())
    _check_inputs(checker)
    branches = plan_branches(checker)
    compiled, deps_of = _compile_nodes(checker, branches)
    outputs = _compile_outputs(checker)
    checker.problems.extend(check_criteria(spec.success, outputs.types))
    checker.problems.extend(
        check_evaluators(spec.evaluators, outputs=spec.outputs, providers=providers)
    )
    if _check_edges(checker, deps_of):
        _check_graph(checker, deps_of, outputs.deps)
        branches.check_exclusive(compiled, deps_of)
    problems = checker.problems
    if any(p.severity == "error" for p in problems):
        return None, problems
    return _link(checker, compiled, deps_of, outputs), problems


def _check_inputs(checker: Checker) -> None:
    for name, inp in checker.spec.inputs.items():
        try:
            vtype = parse_type(inp.type)
        except ValueError as exc:
            checker.error("bad_type", f"inputs.{name}.type", str(exc))
            continue
        checker.input_types[name] = vtype
        if inp.default is not None:
            checker.literal(inp.default, Param(vtype), f"inputs.{name}.default")


def _compile_nodes(
    checker: Checker, branches: Branches
) -> tuple[dict[str, CompiledNode], dict[str, set[str]]]:
    """The nodes that compiled, and what every node reads (those that did not included)."""
    compiled: dict[str, CompiledNode] = {}
    deps_of: dict[str, set[str]] = {}
    for node_id, node in checker.spec.nodes.items():
        deps: set[str] = set()
        deps_of[node_id] = deps
        compiled_node = _compile_node(checker, node_id, node, deps, branches)
        if compiled_node is not None:
            compiled[node_id] = compiled_node
    return compiled, deps_of


def _compile_node(
    checker: Checker, node_id: str, node: NodeSpec, deps: set[str], branches: Branches
) -> CompiledNode | None:
    """One node, checked; every name it reads is added to ``deps``."""
    loc = f"nodes.{node_id}"
    if node_id in RESERVED:
        checker.error("reserved_name", loc, f"{node_id!r} is reserved; rename the node")
    kind = checker.kinds.get(node.uses)
    if kind is None:
        hint = suggest(node.uses, checker.kinds.names())
        checker.error("unknown_kind", f"{loc}.uses", f"unknown node kind {node.uses!r}{hint}")
        return None
    when, negated = (None, False)
    if node.when is not None:
        when, negated = checker.check_when(node.when, f"{loc}.when", deps)
    when, when_reason = branches.gate(node_id, node, when, deps)
    map_plan: MapPlan | None = None
    items: Resolver | None = None
    optional_deps: set[str] = set()
    range_checks: tuple[tuple[str, Range], ...] = ()
    if kind.name == MAP_KIND:
        map_plan, items = compile_map(checker, node, loc, deps)
        params = CheckedParams({}, [], [], set(), set())  # a map's parameters are in its plan
    elif kind.name in (SWITCH_KIND, COALESCE_KIND):
        params = branches.compile_kind(node, loc, deps)
        optional_deps = params.deps - params.required_deps - deps
        deps |= params.deps
    else:
        params = checker.check_params(kind, node.with_, f"{loc}.with", None)
        range_checks = check_literals(checker, kind, node.with_, params.static, f"{loc}.with")
        # A node read only by optional parameters may be skipped without skipping this one.
        optional_deps = params.deps - params.required_deps - deps
        deps |= params.deps
    if isinstance(node.on_failure, FallbackSpec):
        _check_fallback(checker, node, kind, node.on_failure, loc)
    check_fallback_models(checker, node_id, node, kind, loc)
    if node_id in deps:
        checker.error("cycle", loc, f"node {node_id!r} refers to its own output")
    nodes = checker.spec.nodes
    return CompiledNode(
        id=NodeId(node_id),
        kind=kind,
        spec=node,
        static=params.static,
        resolvers=tuple(params.resolvers),
        runtime_checks=tuple(params.runtime_checks),
        # NodeId is the identity at run time; calling it per element costs a Python call.
        deps=cast(frozenset[NodeId], frozenset(d for d in deps if d in nodes and d != node_id)),
        optional_deps=cast(frozenset[NodeId], frozenset(optional_deps)),
        when=when,
        when_negated=negated,
        when_reason=when_reason,
        map_plan=map_plan,
        items=items,
        range_checks=range_checks,
    )


def _check_fallback(
    checker: Checker, node: NodeSpec, kind: NodeKind, policy: FallbackSpec, loc: str
) -> None:
    kind_outputs = checker.output_types(node, kind)
    for out, value in policy.fallback.items():
        where = f"{loc}.on_failure.fallback.{out}"
        if out not in kind_outputs:
            checker.error("unknown_output", where, f"{kind.name} has no output {out!r}")
        else:
            checker.literal(value, Param(kind_outputs[out]), where)


def _compile_outputs(checker: Checker) -> _Outputs:
    outputs = _Outputs()
    for name, value in checker.spec.outputs.items():
        out_type = _output_type(checker, value, f"outputs.{name}", outputs.deps)
        resolver = compile_value(value, max_text=checker.limits.max_template_bytes)
        outputs.resolvers.append((name, resolver, value))
        outputs.types[name] = out_type or JSON
    return outputs


def _output_type(checker: Checker, value: Any, loc: str, deps: set[str]) -> ValueType | None:
    """What an output yields: the type of a whole reference, else text or json as written."""
    out_type: ValueType | None = TEXT if isinstance(value, str) else JSON
    for ref, where, whole in iter_refs(value, loc):
        if isinstance(ref, ValueError):
            checker.error("bad_reference", where, str(ref))
            continue
        if ref.source not in RESERVED:
            deps.add(ref.source)
        rtype = checker.ref_type(ref, where, None)
        if whole and where == loc:
            out_type = rtype
        elif rtype is not None and not rtype.interpolatable:
            checker.error("not_interpolatable", where, f"{ref} is {rtype}; output it on its own")
    return out_type


def _check_edges(checker: Checker, deps_of: Mapping[str, set[str]]) -> bool:
    """Whether the graph's edges are within the limit; the graph checks walk every one."""
    edges = sum(len(deps) for deps in deps_of.values())
    limit = checker.limits.max_edges
    if edges <= limit:
        return True
    checker.error(
        "too_large",
        "nodes",
        f"the workflow has {edges:,} edges (references between nodes), more than the limit "
        f"of {limit:,} (ROLLGRAPH_MAX_EDGES on a server); split it into smaller ones",
    )
    return False


def _check_graph(checker: Checker, deps_of: Mapping[str, set[str]], output_deps: set[str]) -> None:
    # A node reading itself is reported where it is compiled, with a clearer message.
    for cycle in find_cycles({n: {d for d in deps_of[n] if d != n} for n in deps_of}):
        checker.error(
            "cycle", f"nodes.{cycle[0]}", "cycle: " + " → ".join(cycle) + "; a graph cannot loop"
        )
    if not checker.spec.outputs:
        return  # with no declared outputs, no node can be said to feed none
    useful = reaching(deps_of, output_deps)
    for node in checker.spec.nodes:
        if node not in useful:
            checker.problems.append(
                Problem(
                    "unused_node",
                    f"nodes.{node}",
                    f"node {node!r} feeds no declared output; it runs, but its result is unused",
                    severity="warning",
                )
            )


def _link(
    checker: Checker,
    compiled: dict[str, CompiledNode],
    deps_of: Mapping[str, set[str]],
    outputs: _Outputs,
) -> Workflow:
    """The workflow of a graph without errors: nodes in run order, each knowing its consumers."""
    spec = checker.spec
    order = topological_order(deps_of, list(spec.nodes))
    consumers = cast(
        dict[str, list[NodeId]], consumers_of(order, {n: c.deps for n, c in compiled.items()})
    )
    for node_id, compiled_node in compiled.items():
        compiled_node.consumers = tuple(consumers[node_id])
        compiled_node.consumer_pairs = tuple((c, compiled[c]) for c in consumers[node_id])
    return Workflow(
        spec=spec,
        nodes=cast(dict[NodeId, CompiledNode], {n: compiled[n] for n in order}),
        order=cast(tuple[NodeId, ...], tuple(order)),
        outputs=tuple(outputs.resolvers),
        output_types=outputs.types,
        input_types={n: (checker.input_types[n], spec.inputs[n]) for n in spec.inputs},
        output_deps=cast(frozenset[NodeId], frozenset(d for d in outputs.deps if d in compiled)),
        warnings=tuple(p for p in checker.problems if p.severity == "warning"),
    )
