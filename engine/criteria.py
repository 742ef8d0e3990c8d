"""Success criteria: assertions a completed run must meet to count as a success.

``success:`` lists assertions over the run's outputs (``output: NAME`` with ``exists``,
``non_empty``, ``type``, ``pattern``, ``min``, ``max``) and facts of the run (``fact: cost_usd``
or ``fact: latency_s`` with ``min``/``max``). They are checked when the workflow is defined (the
output is declared, the type parses, the pattern compiles, bounds are ordered) and evaluated when
a run has completed: the first one that fails ends the run ``failed`` with code
``criteria_failed`` and names the assertion, so experiments count it as unsuccessful.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.errors import Problem
from engine.spec import CriterionSpec
from engine.trace import Trace
from engine.types import ValueType, check_value, parse_type

__all__ = ["CRITERIA_FAILED", "Criterion", "check_criteria", "compile_criteria", "evaluate"]

CRITERIA_FAILED: Final = "criteria_failed"
_EXCERPT: Final = 60


@dataclass(frozen=True, slots=True)
class Criterion:
    """One assertion, ready to evaluate; ``where`` is its place in the definition."""

    where: str
    spec: CriterionSpec
    vtype: ValueType | None
    pattern: re.Pattern[str] | None


def check_criteria(
    criteria: Sequence[CriterionSpec], output_types: Mapping[str, ValueType]
) -> list[Problem]:
    """Every problem of the ``success`` assertions, given the workflow's declared outputs."""
    problems: list[Problem] = []
    for index, spec in enumerate(criteria):
        where = f"success[{index}]"
        if spec.output is not None and spec.output not in output_types:
            have = ", ".join(output_types) or "none"
            problems.append(
                Problem(
                    "unknown_output",
                    f"{where}.output",
                    f"no declared output {spec.output!r}; the outputs: {have}",
                )
            )
        if spec.type is not None:
            try:
                parse_type(spec.type)
            except ValueError as exc:
                problems.append(Problem("bad_type", f"{where}.type", str(exc)))
        if spec.pattern is not None:
            try:
                re.compile(spec.pattern)
            except re.error as exc:
                problems.append(Problem("bad_pattern", f"{where}.pattern", f"not a regex: {exc}"))
    return problems


def compile_criteria(criteria: Sequence[CriterionSpec]) -> tuple[Criterion, ...]:
    """The assertions of a checked definition, types parsed and patterns compiled once."""
    return tuple(
        Criterion(
            f"success[{i}]",
            spec,
            None if spec.type is None else parse_type(spec.type),
            None if spec.pattern is None else re.compile(spec.pattern),
        )
        for i, spec in enumerate(criteria)
    )


def evaluate(criteria: Sequence[Criterion], outputs: Mapping[str, Any], trace: Trace) -> str | None:
    """Why the first failing assertion fails, or ``None`` when the run meets all of them."""
    for criterion in criteria:
        why = _failure(criterion, outputs, trace)
        if why is not None:
            return f"{criterion.where}: {why}"
    return None


def _failure(criterion: Criterion, outputs: Mapping[str, Any], trace: Trace) -> str | None:
    spec = criterion.spec
    subject: str
    if spec.fact is not None:
        value: Any = trace.cost_usd if spec.fact == "cost_usd" else trace.latency_s
        subject = spec.fact
    else:
        value = outputs.get(spec.output or "")
        subject = f"output {spec.output!r}"
    shown = repr(value)[:_EXCERPT]
    if (spec.exists or spec.non_empty) and value is None:
        return f"{subject} does not exist"
    if spec.non_empty and (value == "" or (isinstance(value, str | list | dict) and not value)):
        return f"{subject} is empty"
    if isinstance(value, str) and spec.non_empty and not value.strip():
        return f"{subject} is blank"
    if criterion.vtype is not None:
        try:
            check_value(value, criterion.vtype)
        except ValueError:
            return f"{subject} is {shown}, not {criterion.vtype}"
    if criterion.pattern is not None and (
        not isinstance(value, str) or criterion.pattern.search(value) is None
    ):
        return f"{subject} is {shown}, which does not match {criterion.pattern.pattern!r}"
    if spec.min is not None or spec.max is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{subject} is {shown}, not a number"
        if spec.min is not None and value < spec.min:
            return f"{subject} is {value:g}, below min {spec.min:g}"
        if spec.max is not None and value > spec.max:
            return f"{subject} is {value:g}, above max {spec.max:g}"
    return None
