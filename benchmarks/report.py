"""How every benchmark reports: one JSON object, or a table for people; never a bad number."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["report", "share"]


def _table(result: Mapping[str, Any]) -> str:
    rows = [f"{k:<36} {v:>12.3f}" for k, v in result.items() if isinstance(v, float)]
    rows += [f"{k:<36} {'yes' if ok else 'NO':>12}" for k, ok in result["targets"].items()]
    rows += [f"{k:<36} {v!s:>12}" for k, v in result["machine"].items()]
    return "\n".join([*rows, *(f"note: {n}" for n in result["notes"])])


def report(result: Mapping[str, Any], *, as_json: bool) -> str:
    """The text to print; refuses a result holding a figure that is not a finite positive
    number, which would read as a measurement."""
    numbers = [v for v in result.values() if isinstance(v, float)]
    if not all(math.isfinite(v) and v > 0 for v in numbers):
        raise RuntimeError(f"a measurement is not a finite positive number: {dict(result)}")
    return json.dumps(result, indent=2) if as_json else _table(result)


def share(hits: int, n: int) -> float | int:
    """``hits`` out of ``n``; an exact 0 as the integer 0, since ``report`` reads a float 0.0
    as a failed measurement (a rate of zero false decisions is a real result)."""
    return hits / n if hits else 0
