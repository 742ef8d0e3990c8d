"""One trace per run: a step per node with status, attempts, timing, cost, usage, cache hit.

Times are taken with ``perf_counter`` during the run (cheap, monotonic) and turned into wall-clock
timestamps only when the trace is serialised. A run's cost counts executed steps only; what a
cache hit would have cost is reported separately as ``cost_saved_usd``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal, NewType

__all__ = ["RunId", "RunStatus", "StepStatus", "StepTrace", "Trace"]

RunId = NewType("RunId", str)
StepStatus = Literal[
    "pending", "running", "succeeded", "failed", "skipped", "cancelled", "fallback"
]
# `budget_exceeded`: stopped before a step that would take it past its budget (engine.budget).
RunStatus = Literal["running", "succeeded", "failed", "budget_exceeded"]
_EMPTY: dict[str, Any] = {}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


_STEP_DEFAULTS: dict[str, Any] = {
    "status": "pending",
    "attempts": 0,
    "started": None,
    "ended": None,
    "cost_usd": 0.0,
    "cost_saved_usd": 0.0,
    "usage": _EMPTY,
    "cache_hit": False,
    "error": None,
    "error_code": None,
    "reason": None,
    "meta": _EMPTY,
    "items": None,
}


class StepTrace:
    """One node's part of a run.

    A run creates one per node up front, so creating one writes two fields; a field not yet
    written reads as its default (``__getattr__`` runs only for unset slots). ``usage`` and
    ``meta`` are replaced, never mutated, so the shared empty default stays empty.
    """

    __slots__ = ("node", "kind", *_STEP_DEFAULTS)

    status: StepStatus
    attempts: int
    started: float | None  # perf_counter
    ended: float | None
    cost_usd: float
    cost_saved_usd: float
    usage: dict[str, float]
    cache_hit: bool
    error: str | None
    error_code: str | None
    reason: str | None  # why a step was skipped or cancelled
    meta: dict[str, Any]
    # A map's elements, each a step of its own (``engine.map_steps``); ``None`` for other steps.
    # Nested rather than beside the nodes: the map's entry already sums their cost.
    items: list[StepTrace] | None

    def __init__(self, node: str, kind: str) -> None:
        self.node = node
        self.kind = kind

    def __getattr__(self, name: str) -> Any:
        try:
            return _STEP_DEFAULTS[name]
        except KeyError:
            raise AttributeError(f"StepTrace has no field {name!r}") from None

    @property
    def latency_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    def add_meta(self, values: dict[str, Any]) -> None:
        self.meta = {**self.meta, **values}


class Trace:
    """A run: its identity, status, timing and steps; ``to_json`` is the stored form.

    Like ``StepTrace``, its defaults live on the class so that starting a run is cheap.
    """

    status: RunStatus = "running"
    perf_end: float | None = None
    error: str | None = None
    error_code: str | None = None
    resumed: bool = False
    # Taken over from a process that stopped mid-run: its completed steps were billed in this
    # same attempt, so they count as this run's cost, not as savings.
    taken_over: bool = False
    seed: int = 0
    attrs: dict[str, Any] = _EMPTY  # replaced, never mutated

    def __init__(
        self,
        run_id: RunId,
        workflow: str,
        version: str | None,
        digest: str,
        steps: dict[str, StepTrace],
        *,
        resumed: bool = False,
        taken_over: bool = False,
        seed: int = 0,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.version = version
        self.digest = digest
        self.steps = steps
        self.wall_start = time.time()  # the wall clock at perf_start
        self.perf_start = time.perf_counter()
        if resumed:
            self.resumed = resumed
        if taken_over:
            self.taken_over = taken_over
        if seed:
            self.seed = seed
        if attrs:
            self.attrs = attrs

    @property
    def latency_s(self) -> float | None:
        return None if self.perf_end is None else self.perf_end - self.perf_start

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.steps.values())

    @property
    def cost_saved_usd(self) -> float:
        return sum(s.cost_saved_usd for s in self.steps.values())

    def _wall(self, perf: float | None) -> float | None:
        return None if perf is None else self.wall_start + (perf - self.perf_start)

    def step_json(self, s: StepTrace) -> dict[str, Any]:
        latency = s.latency_s
        step: dict[str, Any] = {
            "node": s.node,
            "kind": s.kind,
            "status": s.status,
            "attempts": s.attempts,
            "started_at": _iso(self._wall(s.started)),
            "ended_at": _iso(self._wall(s.ended)),
            "offset_s": None if s.started is None else round(s.started - self.perf_start, 6),
            "latency_s": None if latency is None else round(latency, 6),
            "cost_usd": round(s.cost_usd, 8),
            "usage": s.usage,
            "cache_hit": s.cache_hit,
            "error": s.error,
        }
        if s.cost_saved_usd:
            step["cost_saved_usd"] = round(s.cost_saved_usd, 8)
        if s.error_code:
            step["error_code"] = s.error_code
        if s.reason:
            step["reason"] = s.reason
        if s.meta:
            step["meta"] = s.meta
        if s.items is not None:
            step["items"] = [self.step_json(item) for item in s.items]
        return step

    def to_json(self) -> dict[str, Any]:
        steps = [self.step_json(s) for s in self.steps.values()]
        latency = self.latency_s
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "version": self.version,
            "digest": self.digest,
            "status": self.status,
            "started_at": _iso(self.wall_start),
            "ended_at": _iso(self._wall(self.perf_end)),
            "latency_s": None if latency is None else round(latency, 6),
            "cost_usd": round(self.cost_usd, 8),
            "cost_saved_usd": round(self.cost_saved_usd, 8),
            "resumed": self.resumed,
            **({"taken_over": True} if self.taken_over else {}),
            "seed": self.seed,
            "error": self.error,
            "error_code": self.error_code,
            "attrs": self.attrs,
            "steps": steps,
        }
