"""Define-time checks of literal parameters beyond their type: ranges and templates.

A literal outside its parameter's range (``engine.ranges``) is an ``out_of_range`` problem naming
the node, the parameter, the value and the range; a parameter fed by a reference is checked when
the run resolves it, before the kind is called (``StepRunner._params``). A literal ``template``
text is checked against its placeholders: attribute or index access (``{a.__class__}``) and, when
the ``values`` keys are written out, every placeholder without a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.kinds.template import template_problems
from engine.node_kinds import NodeKind
from engine.ranges import Range
from engine.typecheck import Checker

__all__ = ["check_literals"]


def check_literals(
    checker: Checker,
    kind: NodeKind,
    written: Mapping[str, Any],
    static: Mapping[str, Any],
    loc: str,
) -> tuple[tuple[str, Range], ...]:
    """Record literal problems under ``loc``; return the ranged parameters a run must check."""
    at_run: list[tuple[str, Range]] = []
    for name, rng in kind.ranged:
        if name not in written:
            continue  # absent, or the kind's own default
        if name not in static:
            at_run.append((name, rng))
            continue
        problem = rng.problem(name, static[name])
        if problem is not None:
            checker.error("out_of_range", f"{loc}.{name}", f"{kind.name}: {problem}")
    if kind.name == "template":
        _check_template(checker, written, loc)
    return tuple(at_run)


def _check_template(checker: Checker, written: Mapping[str, Any], loc: str) -> None:
    text = written.get("text")
    # A reference is interpolated before the template is read; its value is known only then.
    if not isinstance(text, str) or "${" in text:
        return
    values = written.get("values")
    names: list[str] | None
    if values is None:
        names = []
    elif isinstance(values, dict):
        names = [str(k) for k in values]
    else:
        names = None  # a reference to a mapping: its keys arrive with it
    for code, message in template_problems(text, names):
        checker.error(code, f"{loc}.text", message)
