"""The process's ``Runs`` as a dependency alias for route handlers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from control_plane.runs.execution import Runs

__all__ = ["RunsDep", "get_runs"]


async def get_runs(request: Request) -> Runs:
    # async: read on the event loop, no thread-pool hop for a state lookup.
    runs: Runs = request.app.state.runs
    return runs


RunsDep = Annotated[Runs, Depends(get_runs)]
