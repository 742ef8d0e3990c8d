"""Define-time checks and compilation of ``switch`` and ``coalesce`` (``engine.kinds.switch``).

A switch's cases name the nodes that head each branch (``then: [node, ...]``). Each head gets
the switch as a dependency and a gate, "the switch chose my case", ahead of its own ``when``;
what the heads feed is skipped by the executor's usual skip propagation when they are.
``coalesce`` reads its references optionally and runs when at least one of them ran.

Checked here: a case's shape, that branch heads exist and belong to one case only, that a
value match's literals and a case's condition fit the types they compare, that ``coalesce``'s
references agree on a type, and that no node needs the outputs of two cases of one switch
(it would always be skipped) unless a ``coalesce`` merges them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from engine.coalesce import COALESCE_KIND, Coalesces, whole_ref
from engine.comparisons import comparable, equal, literal_type
from engine.graph import topological_order
from engine.refs import INPUTS, ITEM, Resolver, compile_value
from engine.spec import NodeSpec
from engine.typecheck import JSON, CheckedParams, Checker
from engine.types import ValueType, check_value
from engine.workflow import CompiledNode, suggest

__all__ = ["COALESCE_KIND", "DEFAULT_CASE", "SWITCH_KIND", "Branches", "plan_branches"]

SWITCH_KIND: Final = "switch"
DEFAULT_CASE: Final = "default"
_SWITCH_KEYS: Final = ("value", "cases", "default")
_CASE_KEYS: Final = ("when", "match", "then")


@dataclass(frozen=True, slots=True)
class _Gate:
    switch: str
    case: str


@dataclass
class Branches:
    """Every switch's branch heads, and how the nodes that take part are compiled."""

    checker: Checker
    gates: dict[str, _Gate] = field(default_factory=dict)
    coalesces: Coalesces = field(init=False)

    def __post_init__(self) -> None:
        self.coalesces = Coalesces(self.checker)

    # -- a branch head ------------------------------------------------------------------------
    def gate(
        self, node_id: str, node: NodeSpec, when: Resolver | None, deps: set[str]
    ) -> tuple[Resolver | None, Resolver | None]:
        """A node's condition with its branch gate (or ``coalesce``'s "one source ran") put
        first, and the reason a run gives for skipping it; unchanged for other nodes."""
        inner: Resolver | None = None  # why the node's own condition fails
        if node.uses == COALESCE_KIND:
            when, inner = self.coalesces.gate(node, when)
        gate = self.gates.get(node_id)
        if gate is None:
            return when, inner
        deps.add(gate.switch)
        switch, case, own = gate.switch, gate.case, when

        def chosen(scope: Mapping[str, Mapping[str, Any]]) -> bool:
            return bool(scope[switch]["case"] == case) and (own is None or bool(own(scope)))

        def reason(scope: Mapping[str, Mapping[str, Any]]) -> str:
            picked = scope[switch]["case"]
            if picked != case:
                return f"switch {switch!r} chose case {picked!r}, not {case!r}"
            return str(inner(scope)) if inner is not None else f"when {node.when!r} is false"

        return chosen, reason

    # -- the kinds ----------------------------------------------------------------------------
    def compile_kind(self, node: NodeSpec, loc: str, deps: set[str]) -> CheckedParams:
        if node.uses == SWITCH_KIND:
            return self._compile_switch(node, f"{loc}.with", deps)
        return self.coalesces.compile(node, f"{loc}.with.values")

    def _compile_switch(self, node: NodeSpec, loc: str, deps: set[str]) -> CheckedParams:
        checker = self.checker
        value_type: ValueType | None = None
        value: Resolver | None = None
        raw = node.with_.get("value")
        if raw is not None:
            ref = whole_ref(raw)
            if ref is None:
                checker.error(
                    "bad_value", f"{loc}.value", 'value is one reference: "${node.output}"'
                )
            else:
                if ref.source not in (INPUTS, ITEM):
                    deps.add(ref.source)
                value_type = checker.ref_type(ref, f"{loc}.value", None)
                value = compile_value(raw)
        cases: list[tuple[str, Resolver | None, Any]] = []
        for name, case in _cases(node).items():
            where = f"{loc}.cases.{name}"
            when: Resolver | None = None
            if isinstance(case.get("when"), str):
                when, _ = checker.check_when(case["when"], f"{where}.when", deps)
            match = case.get("match", name)
            if "when" not in case:
                if value is None:
                    checker.error(
                        "bad_value", where, f"case {name!r} needs `when:`, or the switch a `value:`"
                    )
                elif value_type is not None:
                    match = self._match_literal(match, value_type, where)
            cases.append((name, when, match if "when" not in case else None))
        chooser = _chooser(cases, value)
        return CheckedParams({}, [("case", chooser)], [], set(deps), set(deps))

    def _match_literal(self, match: Any, value_type: ValueType, where: str) -> Any:
        scalar = match is None or isinstance(match, str | int | float | bool)
        literal = literal_type(match) if scalar else JSON
        if not comparable(literal, value_type):
            self.checker.error(
                "type_mismatch",
                f"{where}.match",
                f"the switch's value is {value_type}; the case matches {match!r:.60}, "
                "which it never equals (write match: with a literal of its type)",
            )
            return match
        try:  # an integer case matches a number value, and a number an integer one
            return check_value(match, value_type) if value_type.name != "json" else match
        except ValueError:
            return match

    # -- the graph ----------------------------------------------------------------------------
    def check_exclusive(
        self, compiled: Mapping[str, CompiledNode], deps_of: Mapping[str, set[str]]
    ) -> None:
        """No node may need two cases of one switch: only one of them ever runs."""
        if not self.gates:
            return
        needs: dict[str, dict[str, str]] = {}
        for node_id in topological_order(deps_of, list(deps_of)):
            node = compiled.get(node_id)
            if node is None:
                continue
            cases: dict[str, str] = {}
            gate = self.gates.get(node_id)
            if gate is not None:
                cases[gate.switch] = gate.case
            for dep in sorted(node.deps - node.optional_deps):
                for switch, case in needs.get(dep, {}).items():
                    other = cases.setdefault(switch, case)
                    if other != case:
                        self.checker.error(
                            "branch_conflict",
                            f"nodes.{node_id}",
                            f"node {node_id!r} needs case {other!r} and case {case!r} of "
                            f"switch {switch!r}, but only one case runs, so it would always be "
                            "skipped; merge the branches with a coalesce node",
                        )
            needs[node_id] = cases


def plan_branches(checker: Checker) -> Branches:
    """Every switch's cases and branch heads, checked; the coalesce output types hooked in."""
    branches = Branches(checker)
    checker.output_hooks[COALESCE_KIND] = branches.coalesces.output_types
    nodes = checker.spec.nodes
    for switch_id, node in nodes.items():
        if node.uses != SWITCH_KIND:
            continue
        loc = f"nodes.{switch_id}.with"
        for key in node.with_:
            if key not in _SWITCH_KEYS:
                hint = suggest(key, list(_SWITCH_KEYS))
                checker.error(
                    "unknown_param",
                    f"{loc}.{key}",
                    f"switch has no parameter {key!r}{hint}; it takes: value, cases, default",
                )
        raw_cases = node.with_.get("cases")
        if not isinstance(raw_cases, dict) or not raw_cases:
            checker.error(
                "missing_param",
                f"{loc}.cases",
                "switch needs cases: {name: {when: ..., then: [node, ...]}}",
            )
            raw_cases = {}
        for key, case in raw_cases.items():
            name = str(key)  # `3:` in YAML is an integer key; the case chosen is its name as text
            where = f"{loc}.cases.{name}"
            if name == DEFAULT_CASE:
                checker.error(
                    "bad_value",
                    where,
                    "'default' names the switch's default; pick another case name",
                )
                continue
            if not isinstance(case, dict):
                checker.error(
                    "bad_value",
                    where,
                    "a case is {when: ..., then: [node, ...]} or {match: ..., then: [...]}",
                )
                continue
            for key in case:
                if key not in _CASE_KEYS:
                    hint = suggest(str(key), list(_CASE_KEYS))
                    checker.error(
                        "unknown_field",
                        f"{where}.{key}",
                        f"a case has no field {key!r}{hint}; it takes: when, match, then",
                    )
            if "when" in case and "match" in case:
                checker.error("bad_value", where, "a case has `when:` or `match:`, not both")
            if "when" in case and not isinstance(case["when"], str):
                checker.error("bad_when", f"{where}.when", "when is a condition written as text")
            _claim(branches, switch_id, name, case.get("then"), f"{where}.then")
        _claim(branches, switch_id, DEFAULT_CASE, node.with_.get("default", []), f"{loc}.default")
    return branches


def _claim(branches: Branches, switch_id: str, case: str, heads: Any, where: str) -> None:
    checker = branches.checker
    if isinstance(heads, str):
        heads = [heads]
    if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
        checker.error("bad_value", where, "then is a list of node names: [node, ...]")
        return
    nodes = checker.spec.nodes
    for head in heads:
        if head not in nodes:
            hint = suggest(head, list(nodes))
            checker.error("unknown_node", where, f"no node {head!r} to run in this case{hint}")
        elif head == switch_id:
            checker.error("cycle", where, f"switch {switch_id!r} cannot be a branch of itself")
        elif head in branches.gates:
            other = branches.gates[head]
            checker.error(
                "duplicate_branch",
                where,
                f"node {head!r} is already in case {other.case!r} of switch {other.switch!r}; "
                "a node heads one branch (put a coalesce after the branches to join them)",
            )
        else:
            branches.gates[head] = _Gate(switch_id, case)


def _cases(node: NodeSpec) -> dict[str, dict[str, Any]]:
    raw = node.with_.get("cases")
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, dict) and k != DEFAULT_CASE}


def _chooser(cases: list[tuple[str, Resolver | None, Any]], value: Resolver | None) -> Resolver:
    def choose(scope: Mapping[str, Mapping[str, Any]]) -> str:
        current = value(scope) if value is not None else None
        for name, when, match in cases:
            if when is not None:
                if when(scope):
                    return name
            elif value is not None and equal(current, match):
                return name
        return DEFAULT_CASE

    return choose
