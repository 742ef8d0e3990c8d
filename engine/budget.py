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
from engine.providers.base import Estimate, Estimating, ModelCall, split_model

__all__ = ["BUDGET_EXCEEDED", "Budget", "BudgetGuard"]

BUDGET_EXCEEDED: Final = "budget_exceeded"
_FIELDS = ("max_cost_usd", "max_tokens", "max_media_seconds")


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

    __slots__ = ("budget", "cost", "media", "pending", "runtime", "tokens")

    def __init__(self, budget: Budget, runtime: Runtime) -> None:
        self.budget = budget
        self.runtime = runtime
        self.cost = 0.0
        self.tokens = 0.0
        self.media = 0.0
        self.pending: dict[str, Estimate] = {}  # step → what it is expected to bill

    def admit(self, step: str, kind: NodeKind, params: Mapping[str, Any]) -> None:
        """Reserve ``step``'s estimate, or raise ``NodeError`` (``budget_exceeded``) naming the
        limit it would cross and the figures. A step that calls no model is not estimated:
        what it bills (a kind may report a cost) is counted when it is settled."""
        if kind.provider_task is None:
            return
        estimate = self._estimate(kind, params)
        pending = self.pending.values()
        b = self.budget
        figures = (
            ("max_cost_usd", b.max_cost_usd, self.cost, estimate.cost_usd, "${:.4f}"),
            ("max_tokens", b.max_tokens, self.tokens, estimate.tokens, "{:,.0f} tokens"),
            (
                "max_media_seconds",
                b.max_media_seconds,
                self.media,
                estimate.media_seconds,
                "{:g} s",
            ),
        )
        for index, (name, limit, spent, needed, fmt) in enumerate(figures):
            if limit is None:
                continue
            flight = sum((e.cost_usd, e.tokens, e.media_seconds)[index] for e in pending)
            if spent + flight + needed > limit:
                raise NodeError(
                    f"budget exceeded: step {step!r} ({kind.name}) is estimated at "
                    f"{fmt.format(needed)}; spent {fmt.format(spent)}, in flight "
                    f"{fmt.format(flight)}, {name} {fmt.format(limit)}",
                    code=BUDGET_EXCEEDED,
                )
        self.pending[step] = estimate

    def settle(self, step: str, cost: float, usage: Mapping[str, float] | None) -> None:
        """What ``step`` actually billed replaces its estimate."""
        if self.pending:
            self.pending.pop(step, None)
        self.cost += cost
        if usage:
            self.tokens += usage.get("tokens_in", 0.0) + usage.get("tokens_out", 0.0)
            self.media += usage.get("media_seconds", 0.0)

    def _estimate(self, kind: NodeKind, params: Mapping[str, Any]) -> Estimate:
        model = params.get("model")
        if kind.provider_task is None or not isinstance(model, str):
            return Estimate()
        try:
            provider_name, model_name = split_model(model)
        except ValueError:
            return Estimate()  # the call itself reports the bad name, unbilled
        provider = self.runtime.providers.get(provider_name)
        if not isinstance(provider, Estimating):
            return Estimate()
        call = ModelCall(task=kind.provider_task, model=model_name, inputs=params)
        return provider.estimate(call) or Estimate()
