"""HTTP route of the audit log (admin only): who changed what, before and after, newest first."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from control_plane.access.deps import AdminDep, auth_responses
from control_plane.api.deps import UnitDep
from control_plane.api.errors import error_responses
from control_plane.audit import service
from control_plane.audit.schemas import AuditEntryPublic
from control_plane.kit.storable import Storable

__all__ = ["router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get(
    "",
    response_model=list[AuditEntryPublic],
    responses={**auth_responses("admin"), **error_responses(422)},
)
async def list_audit(
    unit: UnitDep,
    principal: AdminDep,
    target_kind: Annotated[
        str | None,
        Query(max_length=50, description="version | label | rollout | api_key"),
        Storable,
    ] = None,
    target: Annotated[
        str | None, Query(max_length=400, description="e.g. `product-video:prod`"), Storable
    ] = None,
    actor: Annotated[
        str | None, Query(max_length=200, description="a key's name"), Storable
    ] = None,
    since: Annotated[datetime | None, Query(description="at or after (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryPublic]:
    """Audit rows matching every given filter, newest first."""
    return await unit(
        partial(
            service.list_entries,
            target_kind=target_kind,
            target=target,
            actor=actor,
            since=since,
            limit=limit,
        )
    )
