"""What a label's shadow runs cost in the last hour, as the cost cap reads it.

The store holds the truth (``service.spent_last_hour``), but one query per mirrored request is
a store round trip per shadow; a figure read less than ``max_age_s`` ago serves instead, raised
by what this process's shadow runs billed since. Another replica's shadow runs of that second
are not in it, so the cap may be passed by about one second of the label's shadow spend.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

from sqlmodel import Session

from control_plane.runs.planning import RunPlan
from control_plane.runs.shadow.service import spent_last_hour

__all__ = ["Spend"]

Units = Callable[[Callable[[Session], float]], Awaitable[float]]


class Spend:
    """Per (workflow, label): the last hour's shadow spend, read at most every ``max_age_s``."""

    def __init__(self, units: Units, *, max_age_s: float = 1.0) -> None:
        self._units = units
        self._max_age_s = max_age_s
        self._known: dict[tuple[str, str], tuple[float, float]] = {}  # → (read at, dollars)

    async def last_hour(self, plan: RunPlan) -> float:
        key = (plan.workflow, plan.label or "")
        known = self._known.get(key)
        now = time.monotonic()
        if known is not None and now - known[0] < self._max_age_s:
            return known[1]
        spent = await self._units(
            partial(spent_last_hour, workflow=plan.workflow, label=plan.label or "")
        )
        self._known[key] = (now, spent)
        return spent

    def add(self, plan: RunPlan, cost_usd: float) -> None:
        """A shadow run of this process ended, billing ``cost_usd``."""
        key = (plan.workflow, plan.label or "")
        known = self._known.get(key)
        if known is not None:
            self._known[key] = (known[0], known[1] + cost_usd)
