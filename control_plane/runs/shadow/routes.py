"""HTTP routes of shadow traffic: start, stop and read a label's shadow candidate, and the
comparison of its runs with the served ones. Starting and stopping need an admin key (like
promoting; its name is the audit actor), reading a viewer key."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from control_plane.access.deps import AdminDep, ViewerDep, auth_responses
from control_plane.api.deps import UnitDep
from control_plane.api.errors import error_responses
from control_plane.api.params import LabelName, WorkflowName
from control_plane.kit.storable import Storable
from control_plane.runs.shadow import service
from control_plane.runs.shadow.comparison import ShadowComparison, compare_shadow
from control_plane.runs.shadow.schemas import ShadowPublic, ShadowSet

__all__ = ["router"]

router = APIRouter(prefix="/v1/workflows", tags=["shadow"])


@router.put(
    "/{name}/labels/{label}/shadow",
    response_model=ShadowPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def start_shadow(
    name: WorkflowName, label: LabelName, body: ShadowSet, unit: UnitDep, principal: AdminDep
) -> ShadowPublic:
    """Start shadowing: `version` runs on a copy of the inputs of `percent` of the label's users
    (sticky, a salt of its own) after each is answered; its output reaches no caller. Replaces
    running settings; audited."""
    return await unit(
        partial(
            service.start_shadow,
            workflow=name,
            label=label,
            version=body.version,
            percent=body.percent,
            max_cost_usd_per_hour=body.max_cost_usd_per_hour,
            actor=principal.name,
        )
    )


@router.delete(
    "/{name}/labels/{label}/shadow",
    response_model=ShadowPublic,
    responses={**auth_responses("admin"), **error_responses(404, 422)},
)
async def stop_shadow(
    name: WorkflowName, label: LabelName, unit: UnitDep, principal: AdminDep
) -> ShadowPublic:
    """Stop shadowing the label (settings kept, runs already started finish); audited."""
    return await unit(
        partial(service.stop_shadow, workflow=name, label=label, actor=principal.name)
    )


@router.get(
    "/{name}/labels/{label}/shadow",
    response_model=ShadowPublic,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def get_shadow(
    name: WorkflowName, label: LabelName, unit: UnitDep, principal: ViewerDep
) -> ShadowPublic:
    """The label's shadow settings, running or stopped, and what its runs spent in the last
    hour."""
    return await unit(partial(service.get_shadow, workflow=name, label=label))


@router.get(
    "/{name}/labels/{label}/shadow/comparison",
    response_model=ShadowComparison,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def get_comparison(
    name: WorkflowName,
    label: LabelName,
    unit: UnitDep,
    principal: ViewerDep,
    version: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="the shadow version (default: the label's shadow candidate)",
        ),
        Storable,
    ] = None,
    limit: Annotated[int, Query(ge=2, le=100_000, description="newest pairs compared")] = 10_000,
) -> ShadowComparison:
    """Served vs shadow, paired by request, on success (McNemar's exact test), latency and cost
    (paired t-test) and outcomes present on both runs, with a verdict in words."""
    return await unit(
        partial(compare_shadow, workflow=name, label=label, version=version, limit=limit)
    )
