"""Request dependencies as ``Annotated`` aliases.

``UnitDep`` is how a handler reaches the store: ``await unit(work)`` runs ``work(session)`` in
a worker thread in a unit of work of its own, committed when it returns and rolled back when it
raises (services never commit, so a failed request leaves nothing half-written), and the
connection is back in the pool before the handler goes on. The units are the process's
``UnitGate`` (``Runs.units``): past its bound a request gets 503 ``store_busy`` at once rather
than waiting for a connection of a saturated store. Handlers are ``async``: the answer is
serialised on the event loop, with no connection held. A session held across the handler, as
a dependency with ``yield``, deadlocked under load: every thread inside a handler waiting for a
connection, every connection held by a finished handler waiting for a thread to serialise its
answer or close its session.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request

import engine
from control_plane.metrics import Metrics
from control_plane.settings import Settings
from control_plane.store.db import Unit, UnitGate

__all__ = [
    "EngineDep",
    "MetricsDep",
    "SettingsDep",
    "Unit",
    "UnitDep",
    "get_engine",
    "get_metrics",
    "get_settings_dep",
    "get_unit",
]

T = TypeVar("T")


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


async def get_unit(request: Request) -> Unit:
    units: UnitGate = request.app.state.runs.units
    return units


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[engine.Engine, Depends(get_engine)]
UnitDep = Annotated[Unit, Depends(get_unit)]
