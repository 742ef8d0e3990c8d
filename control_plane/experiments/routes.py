"""HTTP routes of experiments: start (admin), list and read (viewer), stop (admin).

Handlers only translate HTTP to service calls; the session commits at the request boundary.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status

from control_plane.api.auth import AdminDep, ViewerDep, auth_responses
from control_plane.api.deps import SessionDep
from control_plane.api.errors import error_responses
from control_plane.experiments import service
from control_plane.experiments.schemas import ExperimentCreate, ExperimentPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

ExperimentId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    response_model=ExperimentPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**auth_responses("admin"), **error_responses(404, 409, 413, 422)},
)
def start_experiment(
    body: ExperimentCreate, session: SessionDep, principal: AdminDep
) -> ExperimentPublic:
    """Start an experiment on a label: its version against the candidates, on live traffic."""
    return service.start_experiment(session, body=body, actor=principal.name)


@router.get(
    "",
    response_model=list[ExperimentPublic],
    responses={**auth_responses("viewer"), **error_responses(422)},
)
def list_experiments(
    session: SessionDep,
    principal: ViewerDep,
    workflow: Annotated[str | None, Query(max_length=128)] = None,
    status: Literal["running", "stopped", "promoted", "rolled_back"] | None = None,
) -> list[ExperimentPublic]:
    """Experiments, newest first."""
    return service.list_experiments(session, workflow=workflow, status=status)


@router.get(
    "/{experiment_id}",
    response_model=ExperimentPublic,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
def get_experiment(
    experiment_id: ExperimentId, session: SessionDep, principal: ViewerDep
) -> ExperimentPublic:
    return service.get_experiment(session, experiment_id=experiment_id)


@router.post(
    "/{experiment_id}/stop",
    response_model=ExperimentPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
def stop_experiment(
    experiment_id: ExperimentId, session: SessionDep, principal: AdminDep
) -> ExperimentPublic:
    """End a running experiment: the label's traffic goes back to its version and rollout."""
    return service.stop_experiment(session, experiment_id=experiment_id, actor=principal.name)
