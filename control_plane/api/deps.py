"""Request dependencies as ``Annotated`` aliases, one unit of work per request.

The session commits at the request boundary when the handler returns and rolls back when it
raises: services never commit, so a failed request leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from control_plane.settings import Settings
from control_plane.store.db import session_scope

__all__ = ["SessionDep", "SettingsDep", "get_session", "get_settings_dep"]


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with session_scope(request.app.state.session_factory) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": commit when the handler returns, before the response is sent; with the
# default scope FastAPI would send the response first, and a client could read its own write
# as missing, or be told "201" about a commit that then failed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
