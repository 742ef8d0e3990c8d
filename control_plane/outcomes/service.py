"""Record outcomes of runs: ``{"converted": true, "rating": 4.5}``.

A metric's kind is fixed per workflow by its first value (boolean → proportion, number →
mean), or by the experiment that names it; a value of the other kind is a 422. Each (run,
metric) is recorded once: the same value again is a no-op (a client retry), another value a
409, also when two requests race (the database settles which one stored it). A run routed by
an experiment adds the value to its arm's statistics in the same transaction.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlmodel import Session

from control_plane.errors import Conflict, NotFound, ValidationFailed
from control_plane.experiments import outcome_rows
from control_plane.experiments.schemas import BUILTIN_METRICS
from control_plane.experiments.service import check_metric_kind
from control_plane.experiments.stats import add_observation, unit_of
from control_plane.runs import repository as runs_repo
from control_plane.workflows import repository as workflows_repo

__all__ = ["OUTCOME_LIMIT", "outcome_problem", "record_outcomes"]

Value = bool | int | float

# An arm's statistics keep the sum of squares of every value: within ±1e12 a value squared is
# at most 1e24, so billions of them still sum to a finite number, where one 1e308 would turn
# the sum into infinity and end that experiment's analysis for good. No rating, count, amount
# in cents or duration in ms comes near it.
OUTCOME_LIMIT = 1e12


def outcome_problem(value: Value) -> str | None:
    """Why ``value`` cannot be an outcome, or ``None``."""
    if isinstance(value, bool):
        return None
    number = float(value)
    if not math.isfinite(number) or abs(number) > OUTCOME_LIMIT:
        return f"must be true, false or a finite number within ±{OUTCOME_LIMIT:g}, got {value!r}"
    return None


def _kind_and_value(name: str, value: Value) -> tuple[str, float]:
    problem = outcome_problem(value)
    if problem is not None:
        raise ValidationFailed(f"outcome {name!r} {problem}")
    if isinstance(value, bool):
        return "proportion", 1.0 if value else 0.0
    return "mean", float(value)


def record_outcomes(
    session: Session, *, run_id: str, outcomes: Mapping[str, Value]
) -> dict[str, str]:
    """Record each metric of ``outcomes`` for the run; per metric, ``recorded`` or
    ``unchanged`` (already recorded with this value)."""
    run = runs_repo.get_run(session, run_id)
    if run is None:
        raise NotFound(f"no run {run_id!r}")
    workflow = workflows_repo.get_workflow(session, run.workflow)
    assert workflow is not None  # runs name workflows that exist
    result: dict[str, str] = {}
    for name, raw in sorted(outcomes.items()):
        if name in BUILTIN_METRICS:
            raise ValidationFailed(
                f"{name} is measured by rollgraph for every run; name the outcome otherwise"
            )
        if name.startswith("eval."):
            raise ValidationFailed(
                f"{name} is recorded by the workflow's evaluator; name the outcome otherwise"
            )
        kind, value = _kind_and_value(name, raw)
        try:
            check_metric_kind(session, workflow=workflow, name=name, kind=kind)
        except ValueError as exc:
            raise ValidationFailed(f"outcome {name!r}: {exc}") from exc
        known = outcome_rows.insert_outcome(session, run_id=run_id, metric=name, value=value)
        if known is not None:
            if known != value:
                raise Conflict(
                    f"run {run_id} already has {name} = {known:g}; outcomes are recorded "
                    "once per run and metric"
                )
            result[name] = "unchanged"
            continue
        if run.experiment_id is not None and run.arm is not None:
            add_observation(
                session,
                experiment_id=run.experiment_id,
                step=run.experiment_step or 0,
                arm=run.arm,
                metric=name,
                kind=kind,
                value=value,
                unit=unit_of(run),
            )
        result[name] = "recorded"
    return result
