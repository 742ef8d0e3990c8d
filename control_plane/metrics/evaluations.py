"""The metrics of online evaluators (``control_plane.runs.evaluations``).

An evaluator's model calls are billed here, in ``rollgraph_evaluator_cost_usd_total``, never in
the run's ``cost_usd`` or ``rollgraph_run_cost_usd_total``: a run's cost is what serving it
cost, and a judge sampled on 10 % of runs must not make the version look dearer than it is.
``rollgraph_evaluations_total`` counts each evaluation by how it ended: ``recorded`` (its score
is the run's outcome now), ``duplicate`` (the run had that score already: a retried or
taken-over evaluation), ``failed`` (no score: the judge failed or its budget was too small) or
``skipped`` (not in the sample). ``rollgraph_evaluations_dropped_total`` counts runs not
evaluated at all because the evaluation queue was full or the store was away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from prometheus_client import Counter

__all__ = ["EvaluationEnd", "EvaluationMetrics"]

EvaluationEnd = Literal["recorded", "duplicate", "failed", "skipped"]


class EvaluationMetrics:
    def __init__(self, counter: Callable[[str, str, tuple[str, ...]], Counter]) -> None:
        self.evaluations = counter(
            "evaluations",
            "Evaluations of succeeded runs, by how they ended: recorded | duplicate | failed | "
            "skipped (not sampled)",
            ("workflow", "evaluator", "result"),
        )
        self.cost = counter(
            "evaluator_cost_usd",
            "Dollars billed by evaluators' model calls; never part of a run's cost",
            ("workflow", "evaluator"),
        )
        self.dropped = counter(
            "evaluations_dropped",
            "Succeeded runs not evaluated: queue_full | unavailable",
            ("workflow", "reason"),
        )

    def observe(self, *, workflow: str, evaluator: str, result: EvaluationEnd) -> None:
        self.evaluations.labels(workflow, evaluator, result).inc()

    def observe_cost(self, *, workflow: str, evaluator: str, cost_usd: float) -> None:
        if cost_usd > 0:
            self.cost.labels(workflow, evaluator).inc(cost_usd)

    def observe_drop(self, *, workflow: str, reason: Literal["queue_full", "unavailable"]) -> None:
        self.dropped.labels(workflow, reason).inc()
