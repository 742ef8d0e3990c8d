"""A background run's task body: it ends quietly, whatever its run does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["guarded"]

log = logging.getLogger("control_plane.runs.execution")  # where these lines were always logged


async def guarded(job: Coroutine[Any, Any, Any]) -> None:
    """Await ``job``; a cancellation (shutdown) or an error is the job's to store, not the
    task's to raise: nobody awaits a background run's task."""
    try:
        await job
    except asyncio.CancelledError:
        pass  # stopped at shutdown; stored as interrupted by the job itself
    except Exception:
        log.exception("a background run could not be stored")
