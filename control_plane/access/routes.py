"""HTTP routes of API keys, all admin only: create (the key is in the answer, once), list,
revoke. Handlers only translate HTTP to service calls, each one unit of work (``UnitDep``)."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response, status

from control_plane.access import service
from control_plane.access.deps import AdminDep, auth_responses
from control_plane.access.schemas import KeyCreate, KeyCreated, KeyPublic
from control_plane.api.deps import UnitDep
from control_plane.api.errors import error_responses
from control_plane.api.params import KeyName

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["access"])


@router.post(
    "",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses={**auth_responses("admin"), **error_responses(409, 413, 422)},
)
async def create_key(
    body: KeyCreate, unit: UnitDep, principal: AdminDep, response: Response
) -> KeyCreated:
    """Create a key; the answer holds the key itself, the only time it is shown."""
    # The answer carries a secret: no cache, proxy or browser may keep it.
    response.headers["Cache-Control"] = "no-store"
    return await unit(
        partial(service.create_key, name=body.name, role=body.role, actor=principal.name)
    )


@router.get("", response_model=list[KeyPublic], responses=auth_responses("admin"))
async def list_keys(unit: UnitDep, principal: AdminDep) -> list[KeyPublic]:
    """Every key's metadata, revoked ones included; never a key or its hash."""
    return await unit(service.list_keys)


@router.delete(
    "/{name}",
    response_model=KeyPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def revoke_key(name: KeyName, unit: UnitDep, principal: AdminDep) -> KeyPublic:
    """Revoke a key: requests with it get 401 from now on. The name stays taken."""
    return await unit(partial(service.revoke_key, name=name, actor=principal.name))
