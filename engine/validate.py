"""Define-time checks: every problem of a graph found at once, then the graph compiled.

Checks, each with a stable code: unknown node kind (``unknown_kind``), unknown or missing
parameter (``unknown_param``, ``missing_param``), a literal of the wrong type (``bad_value``), a
reference to a missing node, input or output with a suggestion (``unknown_node``,
``unknown_input``, ``unknown_output``), a type mismatch along an edge (``type_mismatch``,
``not_interpolatable``), an unusable model (``bad_model``), a cycle naming its path (``cycle``),
and, as a warning, a node whose result reaches no output (``unused_node``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from engine.errors import Problem
from engine.providers.base import Provider, split_model
from engine.refs import INPUTS, ITEM, Ref, Resolver, compile_value, iter_refs
from engine.registry import NodeKind, Param, Registry
from engine.spec import FallbackSpec, NodeSpec, WorkflowSpec
from engine.types import ValueType, assignable, check_value, parse_type
from engine.workflow import CompiledNode, MapPlan, NodeId, Workflow, suggest

__all__ = ["compile_workflow"]

RESERVED = frozenset({INPUTS, ITEM})
MAP_KIND = "map"
_JSON = ValueType("json")
_TEXT = ValueType("text")


@dataclass
class _Checker:
    spec: WorkflowSpec
    registry: Registry
    providers: Mapping[str, Provider]
    problems: list[Problem] = field(default_factory=list)
    input_types: dict[str, ValueType] = field(default_factory=dict)

    def error(self, code: str, location: str, message: str) -> None:
        self.problems.append(Problem(code, location, message))

    # -- references -----------------------------------------------------------------------
    def ref_type(self, ref: Ref, loc: str, item_type: ValueType | None) -> ValueType | None:
        """The type a reference yields, or ``None`` (with a problem recorded) when it is wrong."""
        if ref.source == ITEM:
            if item_type is None:
                self.error("item_outside_map", loc, f"{ref} is only valid inside a map's node")
                return None
            return _JSON if ref.path else item_type
        if ref.source == INPUTS:
            name = cast(str, ref.field)
            vtype = self.input_types.get(name)
            if vtype is None:
                hint = suggest(f"inputs.{name}", [f"inputs.{n}" for n in self.input_types])
                self.error("unknown_input", loc, f"{ref} names no declared input{hint}")
                return None
            return self._path_type(ref, vtype, loc)
        node = self.spec.nodes.get(ref.source)
        if node is None:
            candidates = [*self.spec.nodes, INPUTS]
            hint = suggest(ref.source, candidates)
            self.error("unknown_node", loc, f"{ref} refers to no node {ref.source!r}{hint}")
            return None
        kind = self.registry.get(node.uses)
        if kind is None:
            return None  # reported at the node itself
        outputs = self.output_types(ref.source, node, kind)
        vtype = outputs.get(cast(str, ref.field))
        if vtype is None:
            qualified = [f"{ref.source}.{o}" for o in outputs]
            hint = suggest(f"{ref.source}.{ref.field}", qualified)
            have = ", ".join(outputs) or "none"
            self.error(
                "unknown_output",
                loc,
                f"{ref}: node {ref.source!r} ({kind.name}) has no output {ref.field!r}{hint}; "
                f"its outputs: {have}",
            )
            return None
        return self._path_type(ref, vtype, loc)

    def _path_type(self, ref: Ref, vtype: ValueType, loc: str) -> ValueType | None:
        if ref.path and vtype.name != "json":
            self.error(
                "not_json", loc, f"{ref} reads a field of a {vtype} value; only json has fields"
            )
            return None
        return _JSON if ref.path else vtype

    def output_types(self, node_id: str, node: NodeSpec, kind: NodeKind) -> dict[str, ValueType]:
        if kind.name != MAP_KIND:
            return dict(kind.outputs)
        inner = node.with_.get("node")
        inner_kind = self.registry.get(inner.get("uses", "")) if isinstance(inner, dict) else None
        if inner_kind is None:
            return {"results": ValueType("list", _JSON)}
        out = node.with_.get("output") or next(iter(inner_kind.outputs), "")
        return {"results": ValueType("list", inner_kind.outputs.get(out, _JSON))}

    # -- parameters -----------------------------------------------------------------------
    def check_params(
        self, kind: NodeKind, values: Mapping[str, Any], loc: str, item_type: ValueType | None
    ) -> tuple[
        dict[str, Any], list[tuple[str, Resolver]], list[tuple[str, ValueType]], set[str], set[str]
    ]:
        """Check a kind's parameters; return static values, resolvers, run-time checks, the
        nodes referenced, and the subset referenced by required parameters."""
        static: dict[str, Any] = {}
        hard: set[str] = set()
        resolvers: list[tuple[str, Resolver]] = []
        checks: list[tuple[str, ValueType]] = []
        deps: set[str] = set()
        for name in values:
            if name not in kind.inputs:
                hint = suggest(name, list(kind.inputs))
                accepted = ", ".join(kind.inputs) or "none"
                self.error(
                    "unknown_param",
                    f"{loc}.{name}",
                    f"{kind.name} has no parameter {name!r}{hint}; it takes: {accepted}",
                )
        for name, param in kind.inputs.items():
            where = f"{loc}.{name}"
            if name not in values:
                if param.required:
                    self.error(
                        "missing_param",
                        where,
                        f"{kind.name} needs parameter {name!r} ({param.type})",
                    )
                elif param.default is not None:
                    static[name] = param.default
                continue
            value = values[name]
            resolver = compile_value(value)
            if resolver is None:
                static[name] = self._literal(value, param, where)
                continue
            resolvers.append((name, resolver))
            found: set[str] = set()
            if self._check_refs(value, param, where, item_type, found):
                checks.append((name, param.type))
            deps |= found
            if param.required:
                hard |= found
        if kind.provider_task and isinstance(static.get("model"), str):
            self._check_model(kind, static["model"], f"{loc}.model")
        return static, resolvers, checks, deps, hard

    def _literal(self, value: Any, param: Param, where: str) -> Any:
        try:
            return check_value(value, param.type)
        except ValueError as exc:
            self.error("bad_value", where, str(exc))
            return value

    def _check_refs(
        self, value: Any, param: Param, where: str, item_type: ValueType | None, deps: set[str]
    ) -> bool:
        """Check every reference in a parameter; true when its value needs a run-time check."""
        needs_check = False
        for ref, loc, whole in iter_refs(value, where):
            if isinstance(ref, ValueError):
                self.error("bad_reference", loc, str(ref))
                continue
            if ref.source not in RESERVED:
                deps.add(ref.source)
            vtype = self.ref_type(ref, loc, item_type)
            if vtype is None:
                continue
            if whole and loc == where:
                if not assignable(vtype, param.type):
                    self.error(
                        "type_mismatch",
                        loc,
                        f"{ref} is {vtype} but this parameter takes {param.type}",
                    )
                needs_check |= vtype.name == "json" and param.type.name != "json"
            elif not vtype.interpolatable:
                self.error(
                    "not_interpolatable",
                    loc,
                    f"{ref} is {vtype} and cannot be written into text; pass it on its own",
                )
            elif loc == where and param.type.name not in {"text", "json"}:
                self.error(
                    "type_mismatch", loc, f"a text template cannot feed a {param.type} parameter"
                )
        return needs_check

    def _check_model(self, kind: NodeKind, model: str, where: str) -> None:
        try:
            provider_name, model_name = split_model(model)
        except ValueError as exc:
            self.error("bad_model", where, str(exc))
            return
        provider = self.providers.get(provider_name)
        if provider is None:
            hint = suggest(provider_name, list(self.providers))
            self.error("bad_model", where, f"no provider named {provider_name!r}{hint}")
            return
        task = cast(str, kind.provider_task)
        # A provider may publish a catalogue {model: spec with .task}; the simulator does.
        catalogue = getattr(provider, "models", None) or {}
        fitting = sorted(m for m, spec in catalogue.items() if getattr(spec, "task", task) == task)
        known = f"; its {task} models: {', '.join(fitting)}" if fitting else ""
        if not provider.supports(task):
            self.error("bad_model", where, f"provider {provider_name!r} cannot do {task}")
        elif provider.knows_model(model_name) is False:
            hint = suggest(model_name, fitting)
            self.error(
                "bad_model", where, f"{provider_name} has no model {model_name!r}{hint}{known}"
            )
        elif model_name in catalogue and getattr(catalogue[model_name], "task", task) != task:
            other = getattr(catalogue[model_name], "task", "")
            self.error(
                "bad_model",
                where,
                f"{model} is a {other} model; {kind.name} needs a {task} model{known}",
            )


def _when(checker: _Checker, text: str, loc: str, deps: set[str]) -> tuple[Resolver | None, bool]:
    """``when: "${check.ok}"`` or ``when: "not ${moderate.flagged}"``."""
    negated = text.strip().startswith("not ")
    body = text.strip()[4:].strip() if negated else text.strip()
    refs = list(iter_refs(body, loc))
    if len(refs) != 1 or not refs[0][2] or isinstance(refs[0][0], ValueError):
        checker.error("bad_when", loc, 'write when: "${node.flag}" or when: "not ${node.flag}"')
        return None, negated
    ref = refs[0][0]
    if ref.source not in RESERVED:
        deps.add(ref.source)
    vtype = checker.ref_type(ref, loc, None)
    if vtype is not None and vtype.name not in {"boolean", "json"}:
        checker.error("type_mismatch", loc, f"when needs a boolean, {ref} is {vtype}")
    return compile_value(body), negated


def _find_cycles(deps: Mapping[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle reached by a depth-first search, each reported once."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(deps.get(node, ())):
            if dep not in deps:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    # In data-flow order, starting at the smallest name, so it reads the same
                    # whichever node the search entered the cycle by.
                    flow = list(reversed(cycle))
                    start = flow.index(min(flow))
                    flow = flow[start:] + flow[:start]
                    cycles.append([*flow, flow[0]])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(deps):
        if node not in state:
            visit(node)
    return cycles


def _topological(deps: Mapping[str, set[str]], declared: list[str]) -> list[str]:
    order: list[str] = []
    placed: set[str] = set()
    pending = list(declared)
    while pending:
        rest = []
        for node in pending:
            if deps[node] <= placed:
                order.append(node)
                placed.add(node)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            break
        pending = rest
    return order


def compile_workflow(
    spec: WorkflowSpec, *, registry: Registry, providers: Mapping[str, Provider]
) -> tuple[Workflow | None, list[Problem]]:
    checker = _Checker(spec, registry, providers)
    for name, inp in spec.inputs.items():
        try:
            vtype = parse_type(inp.type)
        except ValueError as exc:
            checker.error("bad_type", f"inputs.{name}.type", str(exc))
            continue
        checker.input_types[name] = vtype
        if inp.default is not None:
            checker._literal(inp.default, Param(vtype), f"inputs.{name}.default")

    compiled: dict[str, CompiledNode] = {}
    deps_of: dict[str, set[str]] = {}
    for node_id, node in spec.nodes.items():
        loc = f"nodes.{node_id}"
        deps: set[str] = set()
        deps_of[node_id] = deps
        if node_id in RESERVED:
            checker.error("reserved_name", loc, f"{node_id!r} is reserved; rename the node")
        kind = registry.get(node.uses)
        if kind is None:
            hint = suggest(node.uses, registry.names())
            checker.error("unknown_kind", f"{loc}.uses", f"unknown node kind {node.uses!r}{hint}")
            continue
        when_resolver, negated = (None, False)
        optional_deps: set[str] = set()
        if node.when is not None:
            when_resolver, negated = _when(checker, node.when, f"{loc}.when", deps)
        map_plan, items = None, None
        if kind.name == MAP_KIND:
            map_plan, items, static, resolvers, checks = _compile_map(checker, node, loc, deps)
        else:
            static, res, chk, found, hard = checker.check_params(
                kind, node.with_, f"{loc}.with", None
            )
            # A node read only by optional parameters may be skipped without skipping this one.
            optional_deps = found - hard - deps
            deps |= found
            resolvers, checks = tuple(res), tuple(chk)
        if isinstance(node.on_failure, FallbackSpec):
            kind_outputs = checker.output_types(node_id, node, kind)
            for out, value in node.on_failure.fallback.items():
                where = f"{loc}.on_failure.fallback.{out}"
                if out not in kind_outputs:
                    checker.error("unknown_output", where, f"{kind.name} has no output {out!r}")
                else:
                    checker._literal(value, Param(kind_outputs[out]), where)
        if node_id in deps:
            checker.error("cycle", loc, f"node {node_id!r} refers to its own output")
        compiled[node_id] = CompiledNode(
            id=NodeId(node_id),
            kind=kind,
            spec=node,
            static=static,
            resolvers=resolvers,
            runtime_checks=checks,
            # NodeId is the identity at run time; calling it per element costs a Python call.
            deps=cast(
                frozenset[NodeId], frozenset(d for d in deps if d in spec.nodes and d != node_id)
            ),
            optional_deps=cast(frozenset[NodeId], frozenset(optional_deps)),
            when=when_resolver,
            when_negated=negated,
            map_plan=map_plan,
            items=items,
        )

    outputs: list[tuple[str, Resolver | None, Any]] = []
    output_types: dict[str, ValueType] = {}
    output_deps: set[str] = set()
    for name, value in spec.outputs.items():
        loc = f"outputs.{name}"
        out_type: ValueType | None = _TEXT if isinstance(value, str) else _JSON
        for ref, where, whole in iter_refs(value, loc):
            if isinstance(ref, ValueError):
                checker.error("bad_reference", where, str(ref))
                continue
            if ref.source not in RESERVED:
                output_deps.add(ref.source)
            rtype = checker.ref_type(ref, where, None)
            if whole and where == loc:
                out_type = rtype
            elif rtype is not None and not rtype.interpolatable:
                checker.error(
                    "not_interpolatable", where, f"{ref} is {rtype}; output it on its own"
                )
        outputs.append((name, compile_value(value), value))
        output_types[name] = out_type or _JSON

    for cycle in _find_cycles({n: {d for d in deps_of[n] if d != n} for n in deps_of}):
        checker.error(
            "cycle", f"nodes.{cycle[0]}", "cycle: " + " → ".join(cycle) + "; a graph cannot loop"
        )
    _warn_unused(checker, deps_of, output_deps)
    problems = checker.problems
    if any(p.severity == "error" for p in problems):
        return None, problems
    order = _topological(deps_of, list(spec.nodes))
    consumers: dict[str, list[NodeId]] = {n: [] for n in compiled}
    for node_id in order:
        for dep in compiled[node_id].deps:
            consumers[dep].append(cast(NodeId, node_id))
    for node_id, compiled_node in compiled.items():
        compiled_node.consumers = tuple(consumers[node_id])
        compiled_node.consumer_pairs = tuple((c, compiled[c]) for c in consumers[node_id])
    workflow = Workflow(
        spec=spec,
        nodes=cast(dict[NodeId, CompiledNode], {n: compiled[n] for n in order}),
        order=cast(tuple[NodeId, ...], tuple(order)),
        outputs=tuple(outputs),
        output_types=output_types,
        input_types={n: (checker.input_types[n], spec.inputs[n]) for n in spec.inputs},
        output_deps=cast(frozenset[NodeId], frozenset(d for d in output_deps if d in compiled)),
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )
    return workflow, problems


def _compile_map(
    checker: _Checker, node: NodeSpec, loc: str, deps: set[str]
) -> tuple[
    MapPlan | None,
    Resolver | None,
    dict[str, Any],
    tuple[tuple[str, Resolver], ...],
    tuple[tuple[str, ValueType], ...],
]:
    """``map``: ``items`` (a list), ``node: {uses, with}`` run per element as ``${item}``."""
    params = dict(node.with_)
    allowed = {"items", "node", "output", "concurrency"}
    for name in params:
        if name not in allowed:
            hint = suggest(name, sorted(allowed))
            checker.error(
                "unknown_param", f"{loc}.with.{name}", f"map has no parameter {name!r}{hint}"
            )
    items_value = params.get("items")
    item_type: ValueType = _JSON
    items_resolver: Resolver | None = None
    if items_value is None:
        checker.error(
            "missing_param", f"{loc}.with.items", "map needs items (a list to fan out over)"
        )
    else:
        refs = list(iter_refs(items_value, f"{loc}.with.items"))
        if len(refs) == 1 and refs[0][2] and isinstance(refs[0][0], Ref):
            ref = refs[0][0]
            if ref.source not in RESERVED:
                deps.add(ref.source)
            vtype = checker.ref_type(ref, f"{loc}.with.items", None)
            if vtype is not None and vtype.item is None and vtype.name != "json":
                checker.error(
                    "type_mismatch",
                    f"{loc}.with.items",
                    f"map items must be a list; {ref} is {vtype}",
                )
            elif vtype is not None and vtype.item is not None:
                item_type = vtype.item
        elif not isinstance(items_value, list):
            checker.error(
                "bad_value", f"{loc}.with.items", "items must be a list or one reference to a list"
            )
        literal_items = items_value
        items_resolver = compile_value(items_value) or (lambda scope: literal_items)
    inner = params.get("node")
    concurrency = params.get("concurrency", 4)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        checker.error("bad_value", f"{loc}.with.concurrency", "concurrency must be an integer ≥ 1")
        concurrency = 1
    if not isinstance(inner, dict) or not isinstance(inner.get("uses"), str):
        checker.error(
            "missing_param", f"{loc}.with.node", "map needs node: {uses: KIND, with: {...}}"
        )
        return None, items_resolver, {}, (), ()
    inner_kind = checker.registry.get(inner["uses"])
    if inner_kind is None or inner_kind.name == MAP_KIND:
        hint = suggest(inner["uses"], checker.registry.names())
        checker.error(
            "unknown_kind", f"{loc}.with.node.uses", f"cannot map over {inner['uses']!r}{hint}"
        )
        return None, items_resolver, {}, (), ()
    inner_with = inner.get("with") or {}
    static, resolvers, _, found, _ = checker.check_params(
        inner_kind, inner_with, f"{loc}.with.node.with", item_type
    )
    deps |= found
    output = params.get("output") or next(iter(inner_kind.outputs), "")
    if output not in inner_kind.outputs:
        hint = suggest(str(output), list(inner_kind.outputs))
        checker.error(
            "unknown_output",
            f"{loc}.with.output",
            f"{inner_kind.name} has no output {output!r}{hint}",
        )
    plan = MapPlan(inner_kind, static, tuple(resolvers), str(output), concurrency)
    return plan, items_resolver, {}, (), ()


def _warn_unused(checker: _Checker, deps_of: Mapping[str, set[str]], output_deps: set[str]) -> None:
    if not checker.spec.outputs:
        return
    useful: set[str] = set()
    frontier = [d for d in output_deps if d in deps_of]
    while frontier:
        node = frontier.pop()
        if node in useful:
            continue
        useful.add(node)
        frontier.extend(d for d in deps_of[node] if d in deps_of)
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
