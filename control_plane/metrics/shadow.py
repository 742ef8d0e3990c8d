"""The metrics of shadow runs, apart from the served runs' own.

A shadow run is never counted in ``rollgraph_runs_total``, ``rollgraph_run_duration_seconds``
or ``rollgraph_run_cost_usd_total``: those feed rollout dashboards and alert rules, which must
describe what callers got. Shadow runs have counters of their own, named ``rollgraph_shadow_*``,
and each mirrored request that was not run is counted once in ``rollgraph_shadow_dropped_total``
with why: ``queue_full`` (the in-process queue, or the Redis run queue, was full),
``cost_cap`` (the label's shadow runs of the last hour cost its cap), ``unavailable`` (the
store or Redis could not take it) or ``input_mismatch`` (the candidate takes other inputs).
A drop never touches the served request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    import engine


class RunFacts(Protocol):
    """What these metrics read of a stored run (``runs.schemas.RunPublic`` has it)."""

    @property
    def workflow(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def status(self) -> str: ...


__all__ = ["DROP_REASONS", "DropReason", "ShadowMetrics"]

DropReason = Literal["queue_full", "cost_cap", "unavailable", "input_mismatch"]
DROP_REASONS: tuple[DropReason, ...] = ("queue_full", "cost_cap", "unavailable", "input_mismatch")


class ShadowMetrics:
    """Shadow runs that ended, their time and cost, and the mirrored requests dropped."""

    def __init__(
        self,
        counter: Callable[[str, str, tuple[str, ...]], Counter],
        histogram: Callable[[str, str, tuple[str, ...]], Histogram],
    ) -> None:
        self.runs = counter(
            "shadow_runs",
            "Shadow runs that ended (first end), by the status they ended with; never counted "
            "in rollgraph_runs_total",
            ("workflow", "version", "status"),
        )
        self.duration = histogram(
            "shadow_run_duration_seconds",
            "Engine time of each ended shadow run",
            ("workflow", "version"),
        )
        self.cost = counter(
            "shadow_cost_usd", "Dollars billed by shadow runs", ("workflow", "version")
        )
        self.dropped = counter(
            "shadow_dropped",
            "Mirrored requests whose shadow run was not started or stored: queue_full | "
            "cost_cap | unavailable | input_mismatch (the served request is never affected)",
            ("workflow", "reason"),
        )

    def observe_run(self, run: RunFacts, result: engine.RunResult, *, first_end: bool) -> None:
        """A shadow run attempt ended and was committed (``Metrics.observe_run``'s shape);
        ``first_end``: counted in ``shadow_runs_total`` (a resumed attempt is not)."""
        workflow, version = run.workflow, run.version
        if first_end:
            self.runs.labels(workflow, version, run.status).inc()
        trace = result.trace
        if trace.latency_s is not None:
            self.duration.labels(workflow, version).observe(trace.latency_s)
        if trace.cost_usd > 0:
            self.cost.labels(workflow, version).inc(trace.cost_usd)

    def observe_drop(self, *, workflow: str, reason: DropReason) -> None:
        self.dropped.labels(workflow, reason).inc()
