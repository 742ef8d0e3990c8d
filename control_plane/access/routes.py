"""HTTP routes of API keys: create (the key is in the answer, once), list and revoke are admin
only; ``GET /v1/keys/me`` tells any valid key its own name and role (what a console shows).
Handlers only translate HTTP to service calls, each one unit of work (``UnitDep``)."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Response, status

from control_plane.access import service
from control_plane.access.deps import AdminDep, ViewerDep, auth_responses
from control_plane.access.schemas import KeyCreate, KeyCreated, KeyIdentity, KeyPublic
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


@router.get("/me", response_model=KeyIdentity, responses=auth_responses("viewer"))
async def whoami(principal: ViewerDep) -> KeyIdentity:
    """The calling key's name and role: what it may do (viewer reads; runner also runs;
    admin also changes). Answered from the key check itself, no store round trip."""
    return KeyIdentity(name=principal.name, role=principal.role)


@router.delete(
    "/{name}",
    response_model=KeyPublic,
    responses={**auth_responses("admin"), **error_responses(404, 409, 422)},
)
async def revoke_key(name: KeyName, unit: UnitDep, principal: AdminDep) -> KeyPublic:
    """Revoke a key: requests with it get 401 from now on. The name stays taken."""
    return await unit(partial(service.revoke_key, name=name, actor=principal.name))
