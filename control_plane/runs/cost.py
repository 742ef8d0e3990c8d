"""A run's billed cost, bounded to what the store, the responses and the analysis can hold.

A run's cost is what its providers reported, summed over its steps and attempts: nothing
rollgraph controls. A provider, or a simulated model given ``seconds: 1e160``, can report a
figure that breaks what comes after it. Squared into its experiment's sum of squares, a cost
above about 1e154 overflows to infinity and ends that experiment's analysis for good. An
infinite cost (a sum of huge step costs) cannot be written as JSON at all: PostgreSQL's
``json`` type refuses ``Infinity``, and so does every response that shows the run.

So a run's cost is bounded to ``MAX_RUN_COST_USD``. That is far above any real run and far
below where the statistics overflow: a billion runs at the bound still sum their squares to
about 1e27. A run past it is stored with the bound as its cost and an ``error`` that gives the
figure the providers reported, so the amount is never lost from view. Its status stays what
the engine said, because its outputs are real.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_RUN_COST_USD", "bounded_cost", "storable_trace"]

MAX_RUN_COST_USD = 1e9


def bounded_cost(cost: float) -> tuple[float, str | None]:
    """``cost`` and ``None`` when it is within ±``MAX_RUN_COST_USD``; else the bound (with
    the sign of ``cost``) and the error to store with the run."""
    if math.isfinite(cost) and abs(cost) <= MAX_RUN_COST_USD:
        return cost, None
    bound = math.copysign(MAX_RUN_COST_USD, cost) if not math.isnan(cost) else MAX_RUN_COST_USD
    return bound, (
        f"cost out of range: the providers reported {cost!r} USD for this run, beyond the "
        f"limit of ±{MAX_RUN_COST_USD:g} USD; cost_usd is stored as {bound:g}"
    )


def storable_trace(trace: dict[str, Any]) -> dict[str, Any]:
    """The trace with its run-level sums bounded like the run's cost. Each step reports one
    provider figure, which is finite; their sum may not be."""
    bounded = dict(trace)
    for key in ("cost_usd", "cost_saved_usd"):
        value = bounded.get(key)
        if isinstance(value, float):
            bounded[key] = bounded_cost(value)[0]
    return bounded
