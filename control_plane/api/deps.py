"""Request dependencies as ``Annotated`` aliases, one unit of work per request.

The session commits at the request boundary when the handler returns and rolls back when it
raises: services never commit, so a failed request leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

import engine
from control_plane.metrics import Metrics
from control_plane.settings import Settings
from control_plane.store.db import session_scope

__all__ = [
    "EngineDep",
    "MetricsDep",
    "SessionDep",
    "SettingsDep",
    "get_engine",
    "get_metrics",
    "get_session",
    "get_settings_dep",
]

# The process-wide objects below are read on the event loop (async): a sync dependency would
# cost a thread-pool hop per request for an attribute lookup.


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_engine(request: Request) -> engine.Engine:
    """The process's graph engine: its node kinds and providers check definitions."""
    run_engine: engine.Engine = request.app.state.engine
    return run_engine


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.session_factory) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[engine.Engine, Depends(get_engine)]
# scope="function": commit when the handler returns, before the response is sent; with the
# default scope FastAPI would send the response first, and a client could read its own write
# as missing, or be told "201" about a commit that then failed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
