"""HTTP routes of experiments: start (admin), list and read (viewer), resume a halted one and
stop (admin).

Handlers only translate HTTP to service calls, each one unit of work (``UnitDep``).
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from control_plane.access.deps import AdminDep, ViewerDep, auth_responses
from control_plane.api.deps import MetricsDep, UnitDep
from control_plane.api.errors import error_responses
from control_plane.errors import Conflict
from control_plane.experiments import evaluator, looks, service, verdict
from control_plane.experiments.schemas import (
    ExperimentCreate,
    ExperimentPublic,
    ExperimentStatus,
)
from control_plane.kit.storable import Storable, StoreText
from control_plane.kit.time import UtcDatetime
from control_plane.metrics import after_commit
from control_plane.store.tables import ExperimentDecisionRow

__all__ = ["DecisionPublic", "router"]

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

ExperimentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    response_model=ExperimentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**auth_responses("admin"), **error_responses(404, 409, 413, 422)},
)
async def start_experiment(
    body: ExperimentCreate, unit: UnitDep, principal: AdminDep
) -> ExperimentPublic:
    """Start an experiment on a label: its version against the candidates, on live traffic."""
    return await unit(partial(service.start_experiment, body=body, actor=principal.name))


@router.get(
    "",
    response_model=list[ExperimentPublic],
    responses={**auth_responses("viewer"), **error_responses(422)},
)
async def list_experiments(
    unit: UnitDep,
    principal: ViewerDep,
    workflow: Annotated[str | None, Query(max_length=128), Storable] = None,
    status: ExperimentStatus | None = None,
) -> list[ExperimentPublic]:
    """Experiments, newest first."""
    return await unit(partial(service.list_experiments, workflow=workflow, status=status))


@router.get(
    "/{experiment_id}",
    response_model=ExperimentPublic,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def get_experiment(
    experiment_id: ExperimentId, unit: UnitDep, principal: ViewerDep
) -> ExperimentPublic:
    return await unit(partial(service.get_experiment, experiment_id=experiment_id))


@router.post(
    "/{experiment_id}/stop",
    response_model=ExperimentPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def stop_experiment(
    experiment_id: ExperimentId, unit: UnitDep, principal: AdminDep
) -> ExperimentPublic:
    """End a running or halted experiment: the candidates go to 0 % and the label's traffic
    goes back to its version and rollout."""
    return await unit(
        partial(service.stop_experiment, experiment_id=experiment_id, actor=principal.name)
    )


@router.post(
    "/{experiment_id}/resume",
    response_model=ExperimentPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def resume_experiment(
    experiment_id: ExperimentId, unit: UnitDep, principal: AdminDep
) -> ExperimentPublic:
    """Resume a halted experiment: the evaluator goes on with it, and the reason codes it
    halted for halt it no more (``acknowledged``)."""
    return await unit(
        partial(service.resume_experiment, experiment_id=experiment_id, actor=principal.name)
    )


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: StoreText = Field(min_length=1, max_length=64, description="the candidate to promote")


@router.post(
    "/{experiment_id}/promote",
    response_model=ExperimentPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def promote_experiment(
    experiment_id: ExperimentId, body: PromoteBody, unit: UnitDep, principal: AdminDep
) -> ExperimentPublic:
    """End the experiment with a candidate promoted: the label moves to it, in one unit of
    work, audited (what `auto_promote` does, by hand)."""
    return await unit(
        partial(
            service.promote_experiment,
            experiment_id=experiment_id,
            version=body.version,
            actor=principal.name,
        )
    )


@router.post(
    "/{experiment_id}/rollback",
    response_model=ExperimentPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def rollback_experiment(
    experiment_id: ExperimentId, unit: UnitDep, principal: AdminDep
) -> ExperimentPublic:
    """End the experiment rolled back: the candidates go to 0 % and the label's traffic back
    to its version (what `auto_rollback` does, by hand)."""
    return await unit(
        partial(service.rollback_experiment, experiment_id=experiment_id, actor=principal.name)
    )


@router.get(
    "/{experiment_id}/results",
    response_model=verdict.ExperimentView,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def experiment_results(
    experiment_id: ExperimentId, unit: UnitDep, principal: ViewerDep
) -> verdict.ExperimentView:
    """Per arm and metric: n, mean, effect with its interval and p-values; and the decision
    with its reasons in words: while it runs, what the evaluator would do now (promote,
    rollback, continue, halt); halted or ended, the decision that did it (``applied``)."""
    return await unit(partial(verdict.view, experiment_id=experiment_id))


class DecisionPublic(BaseModel):
    # Read from a stored decision row or from a fresh evaluation: the same attributes.
    model_config = ConfigDict(frozen=True, from_attributes=True)
    at: UtcDatetime
    step: int
    action: str = Field(description="what was decided: promote | rollback | continue | halt")
    applied: str | None = Field(
        description="what was done: halt | rollback | promote | end | ramp | none"
    )
    reasons: list[dict[str, Any]]
    statistics: dict[str, Any] = Field(description="the results the decision rests on")


@router.get(
    "/{experiment_id}/decisions",
    response_model=list[DecisionPublic],
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def experiment_decisions(
    experiment_id: ExperimentId,
    unit: UnitDep,
    principal: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DecisionPublic]:
    """The evaluator's decisions and actions, newest first, each with its statistics."""

    def read(session: Session) -> list[DecisionPublic]:
        service.get_experiment(session, experiment_id=experiment_id)  # 404 for an unknown id
        rows = session.exec(
            select(ExperimentDecisionRow)
            .where(ExperimentDecisionRow.experiment_id == experiment_id)
            .order_by(col(ExperimentDecisionRow.id).desc())
            .limit(limit)
        ).all()
        return [DecisionPublic.model_validate(r) for r in rows]

    return await unit(read)


@router.get(
    "/{experiment_id}/looks",
    response_model=list[looks.LookPublic],
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def experiment_looks(
    experiment_id: ExperimentId,
    unit: UnitDep,
    principal: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> list[looks.LookPublic]:
    """The evaluator's looks with new data, oldest first: per arm and metric the effect, its
    interval and p-values at that moment (the series behind the console's charts). A longer
    series is thinned evenly to ``limit`` looks, the newest always among them."""
    return await unit(partial(looks.list_looks, experiment_id=experiment_id, limit=limit))


@router.post(
    "/{experiment_id}/evaluate",
    response_model=DecisionPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def evaluate_experiment(
    experiment_id: ExperimentId, unit: UnitDep, metrics: MetricsDep, principal: AdminDep
) -> DecisionPublic:
    """Apply the experiment's rules now, as the background evaluator does on its interval;
    the decision, and what was done."""

    def evaluate(session: Session) -> DecisionPublic:
        experiment = service.get_experiment(session, experiment_id=experiment_id)
        if experiment.status == "halted":
            raise Conflict(
                f"experiment {experiment_id} is halted; resume it "
                f"(POST /v1/experiments/{experiment_id}/resume) or stop it"
            )
        if experiment.status != "running":
            raise Conflict(f"experiment {experiment_id} is {experiment.status}, not running")
        done = evaluator.evaluate(session, experiment_id=experiment_id)
        assert done is not None  # running, checked above
        # Counted when the unit of work commits the decision, not before.
        after_commit(session, partial(done.count, metrics, experiment_id))
        return DecisionPublic.model_validate(done)

    return await unit(evaluate)
