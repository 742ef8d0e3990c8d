"""``coalesce``: the value of whichever branch ran, checked when defined to have one type.

Its references are read as optional dependencies, so a skipped branch does not skip it; it
runs when at least one of them ran and is skipped (naming them) when none did. Its output's
type is what its references agree on (integer widening to number, json giving way), so what
reads it downstream is type-checked as if it read the branch directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from engine.refs import INPUTS, ITEM, Ref, Resolver, compile_value, iter_refs
from engine.spec import NodeSpec
from engine.typecheck import JSON, CheckedParams, Checker
from engine.types import ValueType, assignable

__all__ = ["COALESCE_KIND", "Coalesces", "whole_ref"]

COALESCE_KIND: Final = "coalesce"


@dataclass
class Coalesces:
    """The coalesce nodes of one definition, typed once each."""

    checker: Checker
    # A coalesce's type by the identity of its spec (a spec's dicts make it unhashable).
    _merged: dict[int, ValueType] = field(default_factory=dict)
    _typing: set[int] = field(default_factory=set)

    def gate(
        self, node: NodeSpec, when: Resolver | None
    ) -> tuple[Resolver | None, Resolver | None]:
        """Run only when one of its references' nodes ran (and its own ``when`` holds)."""
        sources = _sources(node)
        if not sources:
            return when, None
        return _any_ran(sources, when), _none_ran_reason(sources, node.when)

    def compile(self, node: NodeSpec, loc: str) -> CheckedParams:
        """Its resolver (the first value of a node that ran) and its optional dependencies."""
        sources = _sources(node)
        if sources is None:
            self.checker.error(
                "bad_value",
                loc,
                'coalesce takes values: ["${a.out}", "${b.out}", ...], two or more references',
            )
            return CheckedParams({}, [], [], set(), set())
        found = {ref.source for ref in sources if ref.source not in (INPUTS, ITEM)}
        self._merged_type(node, loc, report=True)
        lookups = [compile_value(str(ref)) for ref in sources]
        getters = tuple(g for g in lookups if g is not None)

        def first(scope: Mapping[str, Mapping[str, Any]]) -> Any:
            for get in getters:
                try:
                    value = get(scope)
                except KeyError:  # that branch did not run
                    continue
                if value is not None:
                    return value
            return None

        return CheckedParams({}, [("value", first)], [], found, set())

    def output_types(self, node: NodeSpec) -> dict[str, ValueType]:
        """A ``coalesce``'s output type: what its references agree on."""
        return {"value": self._merged_type(node, "", report=False)}

    def _merged_type(self, node: NodeSpec, loc: str, *, report: bool) -> ValueType:
        key = id(node)
        if not report and key in self._merged:
            return self._merged[key]
        if key in self._typing:  # coalesces reading each other: a cycle, reported as one
            return JSON
        self._typing.add(key)
        checker = self.checker
        mark = len(checker.problems)
        typed: list[tuple[Ref, ValueType]] = []
        for index, ref in enumerate(_sources(node) or ()):
            vtype = checker.ref_type(ref, f"{loc}[{index}]", None)
            if vtype is not None:
                typed.append((ref, vtype))
        self._typing.discard(key)
        if not report:
            del checker.problems[mark:]  # reported where the coalesce itself is checked
        merged = _common_type(typed)
        if merged is None:
            merged = JSON
            if report:
                listed = ", ".join(f"{ref} is {vtype}" for ref, vtype in typed)
                checker.error(
                    "type_mismatch", loc, f"coalesce needs one type from its values: {listed}"
                )
        self._merged[key] = merged
        return merged


def _sources(node: NodeSpec) -> list[Ref] | None:
    values = node.with_.get("values")
    if not isinstance(values, list) or len(values) < 2:
        return None
    refs = [whole_ref(v) for v in values]
    return None if any(r is None for r in refs) else [r for r in refs if r is not None]


def _any_ran(sources: list[Ref], when: Resolver | None) -> Resolver:
    names = tuple(ref.source for ref in sources)

    def ran(scope: Mapping[str, Mapping[str, Any]]) -> bool:
        return any(n in scope for n in names) and (when is None or bool(when(scope)))

    return ran


def _none_ran_reason(sources: list[Ref], when_text: str | None) -> Resolver:
    names = tuple(ref.source for ref in sources)

    def reason(scope: Mapping[str, Mapping[str, Any]]) -> str:
        if any(n in scope for n in names):
            return f"when {when_text!r} is false"
        return "none of " + ", ".join(repr(n) for n in names) + " ran"

    return reason


def _common_type(typed: list[tuple[Ref, ValueType]]) -> ValueType | None:
    """The one type all references give (integer widening to number, json giving way), or None."""
    concrete = [vtype for _, vtype in typed if vtype.name != "json"]
    if not concrete:
        return JSON
    merged = concrete[0]
    for vtype in concrete[1:]:
        if assignable(vtype, merged):
            continue
        if assignable(merged, vtype):
            merged = vtype
        else:
            return None
    return merged


def whole_ref(raw: Any) -> Ref | None:
    """The reference a value is, when it is exactly one ``${...}``."""
    refs = list(iter_refs(raw, ""))
    if len(refs) != 1 or not refs[0][2] or isinstance(refs[0][0], ValueError):
        return None
    return refs[0][0]
