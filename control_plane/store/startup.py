"""Waiting for the store when a process starts: a worker or server started while its database
is away (a restart, a failover, containers started together) waits for it instead of exiting.

Under a supervisor an exit would be restarted, but a plain ``rollgraph worker`` would stay down
and leave queued runs waiting for no one. The wait is bounded (``store_startup_wait_s``), so a
wrong URL still fails the start, with the last error, within that time."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from sqlalchemy import Engine

from control_plane.store.failures import OUTAGES

__all__ = ["wait_for_store"]

log = logging.getLogger(__name__)

_FIRST_S = 0.25
_CAP_S = 5.0


async def wait_for_store(db: Engine, prepare: Callable[[Engine], None], *, within_s: float) -> None:
    """Run ``prepare(db)`` (the migrations), retrying while the store is unreachable for up to
    ``within_s`` seconds (0: once); the last outage is raised when the time is up."""
    deadline = time.monotonic() + within_s
    attempt = 0
    while True:
        try:
            prepare(db)
        except OUTAGES as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            if attempt == 0:
                log.warning(
                    "the store is unavailable at start (%s); waiting for it up to %.0f s",
                    str(exc).splitlines()[0][:200],
                    within_s,
                )
            delay = min(_CAP_S, _FIRST_S * 2.0**attempt, left) * random.uniform(0.5, 1.0)
            attempt += 1
            await asyncio.sleep(delay)
            continue
        if attempt:
            log.warning("the store is back after %d attempt(s); starting", attempt + 1)
        return
