"""HTTP routes of the workflow registry: versions, labels, diff.

Handlers only translate HTTP to service calls, each one unit of work (``UnitDep``).
Reads need a viewer key, changes an admin key; the key's name is the actor in audit rows.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from control_plane.access.deps import AdminDep, ViewerDep, auth_responses
from control_plane.api.deps import EngineDep, UnitDep
from control_plane.api.errors import error_responses
from control_plane.api.params import LabelName, VersionLabel, WorkflowName
from control_plane.kit.storable import Storable, StoreText
from control_plane.workflows import service, validation
from control_plane.workflows.schemas import (
    ApplyResult,
    DiffPublic,
    GraphPublic,
    LabelEventPublic,
    LabelPublic,
    VersionDetail,
    VersionPublic,
    WorkflowPublic,
)

__all__ = ["WorkflowApply", "router"]


class WorkflowApply(BaseModel):
    """A definition to store as a new immutable version."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, description="the definition as YAML or JSON text")
    version: StoreText | None = Field(
        default=None, min_length=1, max_length=64, description="label; default: `version:` or next"
    )


class LabelMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: StoreText = Field(min_length=1, max_length=64)


router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


@router.post(
    "/validate",
    response_model=validation.ValidationPublic,
    responses={**auth_responses("viewer"), **error_responses(404, 413, 422)},
)
async def validate_workflow(
    body: validation.WorkflowValidate,
    unit: UnitDep,
    principal: ViewerDep,
    run_engine: EngineDep,
) -> validation.ValidationPublic:
    """Check a definition as applying it would, and store nothing: its problems (each at its
    line, 200 even when it has errors), and when valid its digest, the version it would get,
    the version it is identical to, its graph, and its diff against `against`."""
    return await unit(
        partial(
            validation.validate_definition,
            source=body.source,
            version=body.version,
            against=body.against,
            define=run_engine.define,
            kinds=run_engine.kinds,
        )
    )


@router.post(
    "",
    response_model=ApplyResult,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ApplyResult, "description": "identical content: nothing stored"},
        **auth_responses("admin"),
        **error_responses(409, 413, 422),
    },
)
async def apply_workflow(
    body: WorkflowApply,
    unit: UnitDep,
    principal: AdminDep,
    run_engine: EngineDep,
    response: Response,
) -> ApplyResult:
    """Apply a definition: a new immutable version, or a no-op naming the identical one."""
    # Checked by the engine that will run it: its node kinds (plug-ins included) and providers.
    result = await unit(
        partial(
            service.apply_definition,
            source=body.source,
            version=body.version,
            actor=principal.name,
            define=run_engine.define,
        )
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("", response_model=list[WorkflowPublic], responses=auth_responses("viewer"))
async def list_workflows(unit: UnitDep, principal: ViewerDep) -> list[WorkflowPublic]:
    return await unit(service.list_workflows)


_READ = {**auth_responses("viewer"), **error_responses(404, 422)}
_CHANGE = {**auth_responses("admin"), **error_responses(404, 409, 422)}


@router.get("/{name}/versions", response_model=list[VersionPublic], responses=_READ)
async def list_versions(
    name: WorkflowName, unit: UnitDep, principal: ViewerDep
) -> list[VersionPublic]:
    return await unit(partial(service.list_versions, workflow=name))


@router.get("/{name}/versions/{version}", response_model=VersionDetail, responses=_READ)
async def get_version(
    name: WorkflowName, version: VersionLabel, unit: UnitDep, principal: ViewerDep
) -> VersionDetail:
    return await unit(partial(service.get_version, workflow=name, version=version))


@router.get("/{name}/versions/{version}/graph", response_model=GraphPublic, responses=_READ)
async def get_version_graph(
    name: WorkflowName,
    version: VersionLabel,
    unit: UnitDep,
    principal: ViewerDep,
    run_engine: EngineDep,
) -> GraphPublic:
    """The version's graph for drawing: nodes (kind, model, typed inputs and outputs) and
    node-to-node edges labelled with the type they carry."""
    return await unit(
        partial(service.version_graph, workflow=name, version=version, kinds=run_engine.kinds)
    )


@router.post("/{name}/versions/{version}/archive", response_model=VersionPublic, responses=_CHANGE)
async def archive_version(
    name: WorkflowName, version: VersionLabel, unit: UnitDep, principal: AdminDep
) -> VersionPublic:
    """Archive a version: it serves no traffic and no label may point at it."""
    return await unit(
        partial(service.archive_version, workflow=name, version=version, actor=principal.name)
    )


@router.get("/{name}/labels", response_model=list[LabelPublic], responses=_READ)
async def list_labels(name: WorkflowName, unit: UnitDep, principal: ViewerDep) -> list[LabelPublic]:
    return await unit(partial(service.list_labels, workflow=name))


@router.put("/{name}/labels/{label}", response_model=LabelPublic, responses=_CHANGE)
async def promote(
    name: WorkflowName, label: LabelName, body: LabelMove, unit: UnitDep, principal: AdminDep
) -> LabelPublic:
    """Point a label at a version (promote). Every process reads labels from the store."""
    return await unit(
        partial(
            service.set_label,
            workflow=name,
            label=label,
            version=body.version,
            actor=principal.name,
        )
    )


@router.post("/{name}/labels/{label}/rollback", response_model=LabelPublic, responses=_CHANGE)
async def rollback(
    name: WorkflowName, label: LabelName, unit: UnitDep, principal: AdminDep
) -> LabelPublic:
    """Move a label back to where it pointed before its last move, in one call."""
    return await unit(
        partial(service.rollback_label, workflow=name, label=label, actor=principal.name)
    )


@router.get(
    "/{name}/labels/{label}/history", response_model=list[LabelEventPublic], responses=_READ
)
async def label_history(
    name: WorkflowName,
    label: LabelName,
    unit: UnitDep,
    principal: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LabelEventPublic]:
    return await unit(partial(service.label_history, workflow=name, label=label, limit=limit))


@router.get("/{name}/diff", response_model=DiffPublic, responses=_READ)
async def diff(
    name: WorkflowName,
    unit: UnitDep,
    principal: ViewerDep,
    a: Annotated[str, Query(min_length=1, max_length=64), Storable],
    b: Annotated[str, Query(min_length=1, max_length=64), Storable],
) -> DiffPublic:
    """Structured and unified-text diff of two versions."""
    return await unit(partial(service.diff, workflow=name, a=a, b=b))
