"""The process's ``RegistryCache`` as a dependency alias for route handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from control_plane.registry.cache import RegistryCache

__all__ = ["RegistryDep", "get_registry"]


async def get_registry(request: Request) -> RegistryCache:
    # async: read on the event loop, no thread-pool hop for a state lookup.
    registry: RegistryCache = request.app.state.registry_cache
    return registry


RegistryDep = Annotated[RegistryCache, Depends(get_registry)]
