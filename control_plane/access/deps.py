"""Authentication and roles as dependencies: ``AdminDep``, ``RunnerDep``, ``ViewerDep``.

A request names its key with ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (the
bearer header wins when both are sent). No key, or a key that is unknown or revoked, is a 401
with ``WWW-Authenticate: Bearer``; a valid key whose role is too low is a 403. Roles include
the ones below them (admin ⊇ runner ⊇ viewer; see ``control_plane.access.schemas``).

Both dependencies are ``async``: in the steady state a request is authenticated on the event
loop, with no thread hop and no store round trip. The settings' admin key is checked in memory;
a stored key is looked up in the process's ``RegistryCache`` (by its SHA-256, never the key), and
only on a miss in a unit of work of its own in a worker thread, closed before the handler runs:
``POST /v1/run`` holds no database connection while the graph runs, and the check must not
either. A revocation or a new key bumps the registry's generation, so this process refuses a
revoked key from the next request on, other processes within one poll interval.

Failed lookups are cheap and bounded (``access.failures``): a well-formed key the store does not
know is remembered as unknown for a few seconds, and a client address whose keys failed more than
``FAILURES_PER_S`` store lookups in the last second gets 429 with ``Retry-After`` instead of a
lookup (keys already cached, known-unknown and malformed keys are answered without one, as
before).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from control_plane.access import service
from control_plane.access.failures import FailedKeys
from control_plane.access.schemas import Principal, Role
from control_plane.api.deps import SettingsDep
from control_plane.api.errors import error_responses
from control_plane.errors import Forbidden, TooManyFailedKeys, Unauthorized
from control_plane.registry.deps import RegistryDep
from control_plane.store.generation import read_generation

__all__ = [
    "AdminDep",
    "Principal",
    "RunnerDep",
    "ViewerDep",
    "auth_responses",
    "authenticate",
    "require",
]

# auto_error=False: a missing header is our typed 401 with the error body, not FastAPI's 403.
# Declared as security schemes, they also put the "Authorize" button into /docs.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def _failed_keys(request: Request) -> FailedKeys:
    failed: FailedKeys | None = getattr(request.app.state, "failed_keys", None)
    if failed is None:  # an app built without create_app: one table for its lifetime
        failed = request.app.state.failed_keys = FailedKeys()
    return failed


async def authenticate(
    request: Request,
    settings: SettingsDep,
    cache: RegistryDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """The caller the request's key names; 401 when there is no key or it names nobody, 429
    when this client's keys failed too many store lookups in the last second."""
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise Unauthorized("no API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    admin = service.admin_principal(key=key, admin_key=settings.admin_key)
    if admin is not None:
        return admin
    failed = _failed_keys(request)
    client = request.client.host if request.client is not None else "-"
    if not service.is_well_formed(key):
        raise Unauthorized("unknown API key")  # not one of ours: no lookup can find it
    digest = service.hash_key(key)
    cache_key = ("api_key", digest)
    stored = cache.get(cache_key, service.StoredKey)
    if stored is None:
        if failed.is_known_unknown(digest, generation=cache.generation):
            raise Unauthorized("unknown API key")  # looked up a moment ago
        wait = failed.retry_after(client)
        if wait is not None:  # too many failed lookups from this client: none now
            raise TooManyFailedKeys(
                f"too many unknown or revoked API keys from this address; retry in {wait} s",
                retry_after_s=wait,
            )
        read_at: list[int] = []

        def lookup(session: Session) -> service.StoredKey | None:
            read_at.append(read_generation(session))  # what an unknown key is remembered at
            return service.find_key(session, key=key)

        stored = await cache.fetch(cache_key, service.StoredKey, lookup)
        if stored is None:
            failed.record_failure(client)
            if read_at:
                cache.observe(read_at[-1])
                failed.remember_unknown(digest, generation=read_at[-1])
    return service.accept(stored)


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits callers whose role includes ``role``, else 403."""

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.has(role):
            raise Forbidden(
                f"the API key {principal.name!r} has the role {principal.role!r}; "
                f"this needs {role!r}"
            )
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


def auth_responses(role: Role) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for a route that needs ``role``: 401 and 429 always, 403
    when some valid key can lack the role (every key is at least a viewer)."""
    return error_responses(401, 429) if role == "viewer" else error_responses(401, 403, 429)


AdminDep = Annotated[Principal, Depends(require("admin"))]
RunnerDep = Annotated[Principal, Depends(require("runner"))]
ViewerDep = Annotated[Principal, Depends(require("viewer"))]
