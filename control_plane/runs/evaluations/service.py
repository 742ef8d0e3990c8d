"""What an evaluation reads of a run and how its score becomes the run's outcome, once.

``record_score`` inserts the outcome ``eval.NAME`` with the store's (run, metric) uniqueness
(``experiments.outcome_rows.insert_outcome``: ``ON CONFLICT DO NOTHING``): an evaluation retried,
run twice, or taken over by another process after the first one stored its score changes
nothing the second time, and only the insert that stored the score adds it to the run's
experiment arm. The kind is fixed like any outcome's (a check is a proportion, a judge a mean),
so an experiment may name ``eval.NAME`` as its primary metric or a guardrail.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from sqlmodel import Session, col, select

from control_plane.experiments.outcome_rows import insert_outcome
from control_plane.experiments.service import check_metric_kind
from control_plane.experiments.stats import add_observation, unit_of
from control_plane.runs import repository as runs_repo
from control_plane.store.tables import OutcomeRow
from control_plane.workflows import repository as workflows_repo
from engine.evaluation import FinishedRun, Score

__all__ = ["Recorded", "load_finished", "record_score"]

Recorded = Literal["recorded", "duplicate", "kind_conflict"]


def load_finished(
    session: Session, *, run_id: str, metrics: Iterable[str]
) -> tuple[FinishedRun, frozenset[str]] | None:
    """The succeeded run as its evaluators read it, and which of ``metrics`` it has already
    (those are not evaluated again: a judge is not paid twice); ``None`` unless it succeeded."""
    run = runs_repo.get_run(session, run_id)
    if run is None or run.status != "succeeded":
        return None
    trace = runs_repo.get_trace(session, run_id)
    qualities = _qualities(trace.trace if trace is not None else {})
    query = select(OutcomeRow.metric).where(
        OutcomeRow.run_id == run_id, col(OutcomeRow.metric).in_(list(metrics))
    )
    done = frozenset(session.exec(query).all())
    return FinishedRun(run_id, run.outputs or {}, run.latency_s, qualities), done


def _qualities(trace: dict[str, Any]) -> dict[str, float]:
    # The simulator's quality figure of each model step (engine.providers.sim), by node.
    out: dict[str, float] = {}
    for step in trace.get("steps") or ():
        quality = (step.get("meta") or {}).get("quality")
        if isinstance(quality, int | float) and not isinstance(quality, bool):
            out[str(step.get("node"))] = float(quality)
    return out


def record_score(session: Session, *, run_id: str, score: Score) -> Recorded:
    """Store ``score`` as the run's outcome unless it has one for that metric already."""
    run = runs_repo.get_run(session, run_id)
    assert run is not None  # evaluated runs are stored, and kept past their evaluation
    workflow = workflows_repo.get_workflow(session, run.workflow)
    assert workflow is not None
    try:
        check_metric_kind(session, workflow=workflow, name=score.metric, kind=score.kind)
    except ValueError:
        return "kind_conflict"  # a client recorded this name with the other kind first
    detail = {**score.detail, "cost_usd": round(score.cost_usd, 10)}
    known = insert_outcome(
        session, run_id=run_id, metric=score.metric, value=score.value, detail=detail
    )
    if known is not None:
        return "duplicate"
    if run.experiment_id is not None and run.arm is not None:
        add_observation(
            session,
            experiment_id=run.experiment_id,
            step=run.experiment_step or 0,
            arm=run.arm,
            metric=score.metric,
            kind=score.kind,
            value=score.value,
            unit=unit_of(run),
        )
    return "recorded"
