"""HTTP routes of the workflow registry: versions, labels, diff.

Handlers only translate HTTP to service calls; the session commits at the request boundary.
Authentication and roles come with API keys (next step of the control-plane issue); until then
every change is recorded with the actor ``anonymous``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from control_plane.api.deps import SessionDep
from control_plane.api.errors import error_responses
from control_plane.api.params import ANONYMOUS, LabelName, VersionLabel, WorkflowName
from control_plane.workflows import service
from control_plane.workflows.schemas import (
    ApplyResult,
    DiffPublic,
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
    version: str | None = Field(
        default=None, min_length=1, max_length=64, description="label; default: `version:` or next"
    )


class LabelMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)


router = APIRouter(prefix="/v1/workflows", tags=["workflows"])


@router.post(
    "",
    response_model=ApplyResult,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ApplyResult, "description": "identical content: nothing stored"},
        **error_responses(409, 413, 422),
    },
)
def apply_workflow(body: WorkflowApply, session: SessionDep, response: Response) -> ApplyResult:
    """Apply a definition: a new immutable version, or a no-op naming the identical one."""
    result = service.apply_definition(
        session, source=body.source, version=body.version, actor=ANONYMOUS
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("", response_model=list[WorkflowPublic])
def list_workflows(session: SessionDep) -> list[WorkflowPublic]:
    return service.list_workflows(session)


@router.get(
    "/{name}/versions", response_model=list[VersionPublic], responses=error_responses(404, 422)
)
def list_versions(name: WorkflowName, session: SessionDep) -> list[VersionPublic]:
    return service.list_versions(session, workflow=name)


@router.get(
    "/{name}/versions/{version}", response_model=VersionDetail, responses=error_responses(404, 422)
)
def get_version(name: WorkflowName, version: VersionLabel, session: SessionDep) -> VersionDetail:
    return service.get_version(session, workflow=name, version=version)


@router.post(
    "/{name}/versions/{version}/archive",
    response_model=VersionPublic,
    responses=error_responses(404, 409, 422),
)
def archive_version(
    name: WorkflowName, version: VersionLabel, session: SessionDep
) -> VersionPublic:
    """Archive a version: it serves no traffic and no label may point at it."""
    return service.archive_version(session, workflow=name, version=version, actor=ANONYMOUS)


@router.get("/{name}/labels", response_model=list[LabelPublic], responses=error_responses(404, 422))
def list_labels(name: WorkflowName, session: SessionDep) -> list[LabelPublic]:
    return service.list_labels(session, workflow=name)


@router.put(
    "/{name}/labels/{label}", response_model=LabelPublic, responses=error_responses(404, 409, 422)
)
def promote(
    name: WorkflowName, label: LabelName, body: LabelMove, session: SessionDep
) -> LabelPublic:
    """Point a label at a version (promote). Every process reads labels from the store."""
    return service.set_label(
        session, workflow=name, label=label, version=body.version, actor=ANONYMOUS
    )


@router.post(
    "/{name}/labels/{label}/rollback",
    response_model=LabelPublic,
    responses=error_responses(404, 409, 422),
)
def rollback(name: WorkflowName, label: LabelName, session: SessionDep) -> LabelPublic:
    """Move a label back to where it pointed before its last move, in one call."""
    return service.rollback_label(session, workflow=name, label=label, actor=ANONYMOUS)


@router.get(
    "/{name}/labels/{label}/history",
    response_model=list[LabelEventPublic],
    responses=error_responses(404, 422),
)
def label_history(
    name: WorkflowName,
    label: LabelName,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[LabelEventPublic]:
    return service.label_history(session, workflow=name, label=label, limit=limit)


@router.get("/{name}/diff", response_model=DiffPublic, responses=error_responses(404, 422))
def diff(
    name: WorkflowName,
    session: SessionDep,
    a: Annotated[str, Query(min_length=1, max_length=64)],
    b: Annotated[str, Query(min_length=1, max_length=64)],
) -> DiffPublic:
    """Structured and unified-text diff of two versions."""
    return service.diff(session, workflow=name, a=a, b=b)
