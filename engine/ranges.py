"""The range a numeric kind parameter must lie in, checked before a step can cost anything.

A type alone lets through ``seconds: 1e8`` (a finite number, five million dollars of video) and
``max_tokens: -4``. A ``Range`` on a ``Param`` bounds it: literals are checked when a workflow is
defined (``engine.param_checks``), values that arrive through references when the step's
parameters are resolved, before its kind is called, so a bad value fails the step unbilled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Range", "out_of_range"]


@dataclass(frozen=True, slots=True)
class Range:
    """``low ≤ x ≤ high`` (``low < x`` when ``low_open``); either bound may be absent."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def describe(self, name: str) -> str:
        """``0 < seconds ≤ 600``, ``1 ≤ max_tokens ≤ 128000``, ``temperature ≥ 0``."""
        low = "" if self.low is None else f"{self.low:g} {'<' if self.low_open else '≤'} "
        high = "" if self.high is None else f" ≤ {self.high:g}"
        return f"{low}{name}{high}"

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def problem(self, name: str, value: Any) -> str | None:
        """Why ``value`` does not fit, or ``None``; a non-number is the type check's business."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.contains(value):
            return None
        return f"{name} is {value!r}, outside its range {self.describe(name)}"


def out_of_range(
    checks: Iterable[tuple[str, Range]], params: Mapping[str, Any]
) -> ValueError | None:
    """The first parameter of ``params`` outside its range, as an error; ``None`` when all fit."""
    for name, rng in checks:
        value = params.get(name)
        if value is None:
            continue
        problem = rng.problem(name, value)
        if problem is not None:
            return ValueError(problem)
    return None
