"""Run budgets: stop scheduling before a step would take a run past what it may spend.

A workflow's ``budget: {max_cost_usd, max_tokens, max_media_seconds}`` (and a lower one a caller
passes with a run) bounds the run. Before each step that calls a model, the engine asks the
model's provider what the call is expected to cost (``estimate``, from its price table and the
resolved parameters) and adds it to what the run has spent and what its in-flight steps are
expected to spend. When the sum is over a limit the step is not started: the run stops with status
``budget_exceeded``, its reason naming the step and the figures, and a resume (with a raised
budget) goes on from its completed steps. Reserving in-flight estimates is what keeps parallel
branches from overshooting together; a run can exceed a limit only by how far actual bills
exceed their estimates, never by a step it could have refused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from engine.context import Runtime
from engine.errors import NodeError
from engine.node_kinds import NodeKind
from engine.providers.base import Estimate, ModelCall, split_model

__all__ = ["BUDGET_EXCEEDED", "Budget", "BudgetGuard"]

BUDGET_EXCEEDED: Final = "budget_exceeded"
_FIELDS = ("max_cost_usd", "max_tokens", "max_media_seconds")
_FREE: Final = Estimate()
# How each limit is named and its figures written in a refusal.
_FIGURES: Final = (
    ("max_cost_usd", "${:.4f}"),
    ("max_tokens", "{:,.0f} tokens"),
    ("max_media_seconds", "{:g} s"),
)


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits on one run; ``None`` is no limit."""

    max_cost_usd: float | None = None
    max_tokens: float | None = None
    max_media_seconds: float | None = None
    limited: bool = field(init=False)  # any limit set: decided once, read by every run

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not math.isfinite(value) or value <= 0
            ):
                raise ValueError(f"budget.{name} must be a finite number > 0, got {value!r}")
        object.__setattr__(self, "limited", any(getattr(self, n) is not None for n in _FIELDS))

    @classmethod
    def of(cls, value: Any) -> Budget | None:
        """A budget from a spec model or mapping with the three fields; ``None`` for none."""
        if value is None or isinstance(value, Budget):
            return value
        if isinstance(value, Mapping):
            return cls(*(value.get(name) for name in _FIELDS))
        return cls(*(getattr(value, name, None) for name in _FIELDS))

    def lowered(self, other: Budget | None) -> Budget:
        """Each limit the lower of this one's and ``other``'s."""
        if other is None:
            return self
        values = []
        for name in _FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            values.append(theirs if mine is None else mine if theirs is None else min(mine, theirs))
        return Budget(*values)

    def replaced(self, other: Budget | None) -> Budget:
        """Each limit ``other`` sets instead of this one's (a resume that raises a limit)."""
        if other is None:
            return self
        return Budget(
            *(getattr(self, n) if getattr(other, n) is None else getattr(other, n) for n in _FIELDS)
        )

    def to_json(self) -> dict[str, float]:
        return {n: getattr(self, n) for n in _FIELDS if getattr(self, n) is not None}


class BudgetGuard:
    """The spending of one run against its budget; created per run."""

    __slots__ = ("budget", "flight", "pending", "runtime", "spent")

    def __init__(self, budget: Budget, runtime: Runtime) -> None:
        self.budget = budget
        self.runtime = runtime
        # [cost_usd, tokens, media_seconds]: billed so far, and expected of steps in flight.
        self.spent = [0.0, 0.0, 0.0]
        self.flight = [0.0, 0.0, 0.0]
        self.pending: dict[str, Estimate] = {}  # step → what it is expected to bill

    @property
    def cost(self) -> float:
        return self.spent[0]

    def admit(self, step: str, kind: NodeKind, params: Mapping[str, Any]) -> None:
        """Reserve ``step``'s estimate, or raise ``NodeError`` (``budget_exceeded``) naming the
        limit it would cross and the figures. A step that calls no model is not estimated:
        what it bills (a kind may report a cost) is counted when it is settled."""
        if kind.provider_task is None:
            return
        estimate = self._estimate(kind, params)
        needed = (estimate.cost_usd, estimate.tokens, estimate.media_seconds)
        spent, flight = self.spent, self.flight
        for index, limit in enumerate(
            (self.budget.max_cost_usd, self.budget.max_tokens, self.budget.max_media_seconds)
        ):
            if limit is not None and spent[index] + flight[index] + needed[index] > limit:
                raise self._refusal(step, kind, index, needed[index], limit)
        self.pending[step] = estimate
        for index in range(3):
            flight[index] += needed[index]

    def settle(self, step: str, cost: float, usage: Mapping[str, float] | None) -> None:
        """What ``step`` actually billed replaces its estimate."""
        if self.pending:
            estimate = self.pending.pop(step, None)
            if estimate is not None:
                flight = self.flight
                if self.pending:
                    flight[0] -= estimate.cost_usd
                    flight[1] -= estimate.tokens
                    flight[2] -= estimate.media_seconds
                else:  # nothing in flight: exactly zero, whatever rounding gathered
                    flight[0] = flight[1] = flight[2] = 0.0
        spent = self.spent
        spent[0] += cost
        if usage:
            spent[1] += usage.get("tokens_in", 0.0) + usage.get("tokens_out", 0.0)
            spent[2] += usage.get("media_seconds", 0.0)

    def _refusal(
        self, step: str, kind: NodeKind, index: int, needed: float, limit: float
    ) -> NodeError:
        name, fmt = _FIGURES[index]
        return NodeError(
            f"budget exceeded: step {step!r} ({kind.name}) is estimated at "
            f"{fmt.format(needed)}; spent {fmt.format(self.spent[index])}, in flight "
            f"{fmt.format(self.flight[index])}, {name} {fmt.format(limit)}",
            code=BUDGET_EXCEEDED,
        )

    def _estimate(self, kind: NodeKind, params: Mapping[str, Any]) -> Estimate:
        model = params.get("model")
        if kind.provider_task is None or not isinstance(model, str):
            return _FREE
        try:
            provider_name, model_name = split_model(model)
        except ValueError:
            return _FREE  # the call itself reports the bad name, unbilled
        # Not isinstance(provider, Estimating): a runtime protocol check costs more than this.
        estimate = getattr(self.runtime.providers.get(provider_name), "estimate", None)
        if estimate is None:
            return _FREE
        found: Estimate | None = estimate(ModelCall(kind.provider_task, model_name, params))
        return found or _FREE
