"""Type checks at definition: what each reference yields, and whether it fits where it is used.

A ``Checker`` records problems instead of raising, so one pass over a graph reports every mistake
in it. It types references (to declared inputs, to node outputs, to a map's ``${item}``), checks a
kind's parameters (unknown, missing, a literal or a reference of the wrong type), whether a
``provider/model`` can do the kind's task, and a node's ``when`` condition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

from engine.conditions import compile_condition
from engine.errors import Problem
from engine.limits import Limits
from engine.node_kinds import NodeKind, NodeKinds, Param
from engine.providers.base import Provider, split_model
from engine.refs import INPUTS, ITEM, Ref, Resolver, compile_value, iter_refs
from engine.spec import NodeSpec, WorkflowSpec
from engine.types import ValueType, assignable, check_value
from engine.workflow import suggest

__all__ = ["JSON", "MAP_KIND", "RESERVED", "TEXT", "CheckedParams", "Checker"]

RESERVED = frozenset({INPUTS, ITEM})
MAP_KIND = "map"
JSON = ValueType("json")
TEXT = ValueType("text")


class CheckedParams(NamedTuple):
    """A kind's parameters after checking: what is fixed now, and what a run resolves.

    (A named tuple: a definition makes one per node, and a dataclass is slower to make.)
    """

    static: dict[str, Any]
    resolvers: list[tuple[str, Resolver]]
    # Parameters fed a json value: its declared type can only be checked when the value arrives.
    runtime_checks: list[tuple[str, ValueType]]
    deps: set[str]
    # The nodes read by required parameters: skipping one of them skips the node.
    required_deps: set[str]


@dataclass
class Checker:
    spec: WorkflowSpec
    kinds: NodeKinds
    providers: Mapping[str, Provider]
    limits: Limits = field(default_factory=Limits)
    problems: list[Problem] = field(default_factory=list)
    input_types: dict[str, ValueType] = field(default_factory=dict)
    # Kinds whose outputs' types depend on the node as written (``coalesce``): kind → typer.
    output_hooks: dict[str, Callable[[NodeSpec], dict[str, ValueType]]] = field(
        default_factory=dict
    )

    def error(self, code: str, location: str, message: str) -> None:
        self.problems.append(Problem(code, location, message))

    # -- references -----------------------------------------------------------------------
    def ref_type(self, ref: Ref, loc: str, item_type: ValueType | None) -> ValueType | None:
        """The type a reference yields, or ``None`` (with a problem recorded) when it is wrong."""
        if ref.source == ITEM:
            if item_type is None:
                self.error("item_outside_map", loc, f"{ref} is only valid inside a map's node")
                return None
            return JSON if ref.path else item_type
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
        kind = self.kinds.get(node.uses)
        if kind is None:
            return None  # reported at the node itself
        outputs = self.output_types(node, kind)
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
        return JSON if ref.path else vtype

    def output_types(self, node: NodeSpec, kind: NodeKind) -> dict[str, ValueType]:
        hook = self.output_hooks.get(kind.name)
        if hook is not None:
            return hook(node)
        if kind.name != MAP_KIND:
            return dict(kind.outputs)
        inner = node.with_.get("node")
        inner_kind = self.kinds.get(inner.get("uses", "")) if isinstance(inner, dict) else None
        if inner_kind is None:
            return {"results": ValueType("list", JSON)}
        out = node.with_.get("output") or next(iter(inner_kind.outputs), "")
        return {"results": ValueType("list", inner_kind.outputs.get(out, JSON))}

    # -- parameters -----------------------------------------------------------------------
    def check_params(
        self, kind: NodeKind, values: Mapping[str, Any], loc: str, item_type: ValueType | None
    ) -> CheckedParams:
        """Check a kind's parameters as written under ``loc``; ``item_type`` inside a map."""
        self._reject_unknown_params(kind, values, loc)
        static: dict[str, Any] = {}
        resolvers: list[tuple[str, Resolver]] = []
        checks: list[tuple[str, ValueType]] = []
        deps: set[str] = set()
        required_deps: set[str] = set()
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
            resolver = compile_value(value, max_text=self.limits.max_template_bytes)
            if resolver is None:
                static[name] = self.literal(value, param, where)
                continue
            resolvers.append((name, resolver))
            found: set[str] = set()
            if self._check_refs(value, param, where, item_type, found):
                checks.append((name, param.type))
            deps |= found
            if param.required:
                required_deps |= found
        if kind.provider_task and isinstance(static.get("model"), str):
            self.check_model(kind, static["model"], f"{loc}.model")
        return CheckedParams(static, resolvers, checks, deps, required_deps)

    def _reject_unknown_params(self, kind: NodeKind, values: Mapping[str, Any], loc: str) -> None:
        for name in values:
            if name not in kind.inputs:
                hint = suggest(name, list(kind.inputs))
                accepted = ", ".join(kind.inputs) or "none"
                self.error(
                    "unknown_param",
                    f"{loc}.{name}",
                    f"{kind.name} has no parameter {name!r}{hint}; it takes: {accepted}",
                )

    def literal(self, value: Any, param: Param, where: str) -> Any:
        """A literal as its parameter's type; the value as written when it does not fit."""
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

    def check_model(self, kind: NodeKind, model: str, where: str) -> None:
        """Whether ``model`` (``provider/model``) names a model that can do ``kind``'s task."""
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

    # -- conditions -----------------------------------------------------------------------
    def check_when(self, text: str, loc: str, deps: set[str]) -> tuple[Resolver | None, bool]:
        """A ``when`` condition (``engine.conditions``): its resolver, and ``False`` (negation
        is part of the condition; the pair is what ``CompiledNode`` takes)."""
        resolve, problems = compile_condition(text, lambda ref: self.ref_type(ref, loc, None), deps)
        for code, message in problems:
            self.error(code, loc, f"when: {message}")
        return resolve, False
