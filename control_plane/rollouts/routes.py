"""HTTP routes of rollouts: set and read a label's rollout.

Handlers only translate HTTP to service calls; the session commits at the request boundary.
Setting a rollout needs an admin key (its name is the audit actor), reading one a viewer key.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from control_plane.api.auth import AdminDep, ViewerDep, auth_responses
from control_plane.api.deps import SessionDep
from control_plane.api.errors import error_responses
from control_plane.api.params import LabelName, WorkflowName
from control_plane.rollouts import service
from control_plane.rollouts.schemas import RolloutPublic

__all__ = ["RolloutSet", "router"]


class RolloutSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64, description="the candidate version")
    percent: float = Field(ge=0, le=100, description="share of the label's traffic; 0 ends it")


router = APIRouter(prefix="/v1/workflows", tags=["rollouts"])


@router.put(
    "/{name}/rollouts/{label}",
    response_model=RolloutPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
def set_rollout(
    name: WorkflowName,
    label: LabelName,
    body: RolloutSet,
    session: SessionDep,
    principal: AdminDep,
) -> RolloutPublic:
    """Send `percent` of the label's traffic to `version`, sticky per user id."""
    return service.set_rollout(
        session,
        workflow=name,
        label=label,
        version=body.version,
        percent=body.percent,
        actor=principal.name,
    )


@router.get(
    "/{name}/rollouts/{label}",
    response_model=RolloutPublic,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
def get_rollout(
    name: WorkflowName, label: LabelName, session: SessionDep, principal: ViewerDep
) -> RolloutPublic:
    return service.get_rollout(session, workflow=name, label=label)
