"""HTTP routes of rollouts: set and read a label's rollout.

Handlers only translate HTTP to service calls, each one unit of work (``UnitDep``).
Setting a rollout needs an admin key (its name is the audit actor), reading one a viewer key.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter

from control_plane.access.deps import AdminDep, ViewerDep, auth_responses
from control_plane.api.deps import UnitDep
from control_plane.api.errors import error_responses
from control_plane.api.params import LabelName, WorkflowName
from control_plane.rollouts import service
from control_plane.rollouts.schemas import RolloutPublic, RolloutSet

__all__ = ["RolloutSet", "router"]


router = APIRouter(prefix="/v1/workflows", tags=["rollouts"])


@router.put(
    "/{name}/rollouts/{label}",
    response_model=RolloutPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def set_rollout(
    name: WorkflowName,
    label: LabelName,
    body: RolloutSet,
    unit: UnitDep,
    principal: AdminDep,
) -> RolloutPublic:
    """Set the label's candidates, sticky per user id: `{version, percent}` for one, or
    `{candidates: [{version, percent}, ...]}` for the full list (percents sum to at most 100;
    the rest stays on the label's version). Either form replaces the whole list; percent 0 or
    an empty list ends the rollout."""
    return await unit(
        partial(
            service.set_rollout,
            workflow=name,
            label=label,
            candidates=body.pairs(),
            actor=principal.name,
        )
    )


@router.get(
    "/{name}/rollouts/{label}",
    response_model=RolloutPublic,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def get_rollout(
    name: WorkflowName, label: LabelName, unit: UnitDep, principal: ViewerDep
) -> RolloutPublic:
    return await unit(partial(service.get_rollout, workflow=name, label=label))
