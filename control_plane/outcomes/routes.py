"""``POST /v1/runs/{run_id}/outcome``: what happened after a run (runner key)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel
from sqlmodel import Session

from control_plane.access.deps import RunnerDep, auth_responses
from control_plane.api.deps import MetricsDep, UnitDep
from control_plane.api.errors import error_responses
from control_plane.kit.storable import Storable
from control_plane.metrics import after_commit
from control_plane.outcomes import service
from control_plane.runs import repository as runs_repo

__all__ = ["OutcomeBody", "OutcomeResult", "router"]

router = APIRouter(prefix="/v1/runs", tags=["outcomes"])

MetricName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-.]*$", max_length=100)]


def _outcome_value(value: bool | float) -> bool | float:
    # Here as well as in the service: the 422 then names the metric as its location.
    problem = service.outcome_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


OutcomeValue = Annotated[bool | float, AfterValidator(_outcome_value)]


class OutcomeBody(RootModel[dict[MetricName, OutcomeValue]]):
    """Metric name → a boolean (a proportion: converted, clicked) or a number (a rating,
    finite and within ±1e12)."""

    root: dict[MetricName, OutcomeValue] = Field(min_length=1, max_length=50)


class OutcomeResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    run_id: str
    metrics: dict[str, str] = Field(description="per metric: recorded | unchanged")


@router.post(
    "/{run_id}/outcome",
    response_model=OutcomeResult,
    responses={**auth_responses("runner"), **error_responses(404, 409, 413, 422)},
)
async def record_outcome(
    run_id: Annotated[str, Path(min_length=1, max_length=64), Storable],
    body: OutcomeBody,
    unit: UnitDep,
    metrics_registry: MetricsDep,
    principal: RunnerDep,
) -> OutcomeResult:
    """Record outcomes of a run, once per metric: the same value again changes nothing, another
    value is a 409, a value of the other type than the metric's is a 422."""

    def record(session: Session) -> dict[str, str]:
        metrics = service.record_outcomes(session, run_id=run_id, outcomes=body.root)
        run = runs_repo.get_run(session, run_id)  # read by the service: from the session's map
        assert run is not None
        # Counted when the unit of work commits them: a failed commit recorded nothing.
        after_commit(session, partial(metrics_registry.observe_outcomes, run.workflow, metrics))
        return metrics

    return OutcomeResult(run_id=run_id, metrics=await unit(record))
