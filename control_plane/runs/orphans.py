"""The sweep of runs left behind: orphaned by a stopped process, stranded, past retention.

Every process sweeps on start and then every ``orphan_sweep_s``: runs still ``running`` past
their deadline are failed (they become resumable), queued runs whose message was lost are
queued again, and runs past retention are deleted (not on start: a backlog must not delay it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from sqlmodel import Session

from control_plane.runs import retention, service
from control_plane.runs.queued import QueuedRuns
from control_plane.settings import Settings
from control_plane.store.db import SessionFactory
from control_plane.store.redis import RedisUnavailable

__all__ = ["SweepHost", "sweep"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SweepHost(Protocol):
    """What the sweep uses of the process's run machinery (``execution.Runs`` is one)."""

    settings: Settings
    queued: QueuedRuns | None

    def write(self, work: Callable[[Session], T]) -> Awaitable[T]: ...

    def count_failed_ends(self, session: Session, ended: Iterable[service.EndedRun]) -> None: ...


async def sweep(runs: SweepHost, factory: SessionFactory, *, expire: bool) -> int:
    """Sweep once; how many orphaned runs were failed."""

    def fail(session: Session) -> list[service.EndedRun]:
        ended = service.fail_orphans(session)
        # Only the sweep whose update changed a row gets it back: one count per orphan.
        runs.count_failed_ends(session, ended)
        return ended

    count = len(await runs.write(fail))
    if count:
        log.warning("marked %d interrupted run(s) failed; they can be resumed", count)
    if runs.queued is not None:
        try:
            await runs.queued.requeue_stranded()
        except RedisUnavailable:  # the next sweep tries again
            log.warning("could not queue stranded runs: Redis is unavailable")
    if expire:
        days, batch = runs.settings.run_retention_days, runs.settings.run_retention_batch
        await retention.sweep(factory, days=days, batch=batch)
    return count
