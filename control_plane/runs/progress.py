"""A running attempt's step states, in the store while it runs, for every replica to read.

The engine keeps a run's trace in memory and calls nothing per step (``Engine.run(watch=)``
hands the host the live trace). ``Progress`` looks at it every ``LOOK_S`` (or ``interval_s`` if
shorter) and, when a step's state or attempts (or how many of a map's elements ended) changed
since the last snapshot, posts a snapshot of the trace to the batch writer: the attempt's
``run_trace`` row, upserted, which the run's end overwrites with the final trace. So
``GET /v1/runs/{id}`` on any replica shows which nodes are pending, running, succeeded, failed,
skipped or cached while the run executes on another process, and the cost is bounded per run
(one write per ``interval_s`` at most, none while nothing changes), never one per step; a step
shorter than the interval may be seen only once it ended. A change after a quiet ``interval_s``
is posted at the next look, not at the end of an interval: steps that end seconds apart (a
model call each) reach the store, and the run-events streams, within ``LOOK_S``; only changes
closer together than ``interval_s`` wait for it (measured in ``benchmarks.run_events``).

Only runs that are stored while they run report progress: async runs (on a server or a
worker) and resumes. A sync run is stored once it ended, so it has nobody to report to, and
its hot path has nothing added.

A snapshot is posted only while none is waiting in the writer (the waiting one reads the
latest state when its batch runs), and it is written only while the run is still ``running``
in the store: a snapshot that reaches the writer after the run was stored never hides the
final trace.

Each snapshot written is signalled (``runs.signals``, from the writer's thread): the run's
event streams re-read it at once rather than at their next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from sqlmodel import Session

from control_plane.runs import repository as repo
from control_plane.runs.cost import storable_trace
from control_plane.runs.signals import RunSignals
from control_plane.runs.writer import WriterClosed
from engine import StepTrace, Trace

__all__ = ["LOOK_S", "Progress", "save_snapshot"]

log = logging.getLogger(__name__)

Post = Callable[[Callable[[Session], Any]], Future[Any]]
# How often a running attempt's trace is looked at: a signature of its steps, on the event
# loop, a few microseconds for a small graph.
LOOK_S = 0.1


def save_snapshot(session: Session, *, run_id: str, trace: dict[str, Any]) -> bool:
    """Unit of work: the trace so far as the running attempt's; False (nothing written) when
    the run is no longer running in the store (it ended, or was never stored)."""
    row = repo.get_run(session, run_id)
    if row is None or row.status != "running":
        return False
    repo.upsert_trace(session, run_id=run_id, attempt=row.attempt, trace=trace)
    return True


def _ended(items: list[StepTrace]) -> int:
    # A map runs as one step for as long as its elements take: its elements' ends are progress.
    return sum(1 for item in items if item.status not in ("pending", "running"))


class Progress:
    """Reports one run's progress every ``interval_s`` (0: never); ``watch`` is the engine's
    hook, ``aclose`` stops it."""

    def __init__(
        self,
        post: Post,
        run_id: str,
        interval_s: float,
        signals: RunSignals | None = None,
    ) -> None:
        self._post = post
        self._signals = signals
        self._run_id = run_id
        self._interval_s = interval_s
        self._trace: Trace | None = None
        self._seen: tuple[object, ...] | None = None
        self._latest: dict[str, Any] | None = None
        self._waiting = False  # a snapshot is in the writer's queue
        self._posted_at = -math.inf  # time.monotonic() of the last post
        self._task: asyncio.Task[None] | None = None

    def watch(self, trace: Trace) -> None:
        if not self._interval_s:  # ROLLGRAPH_PROGRESS_INTERVAL_S=0: not reported
            return
        self._trace = trace
        self._look()  # at once: the steps of a new attempt replace those of the last one
        self._task = asyncio.get_running_loop().create_task(
            self._every_look(), name=f"rollgraph-progress-{self._run_id}"
        )

    async def aclose(self) -> None:
        """Stop looking (the run ended; its final trace is stored next, or it was stored failed
        already, which the signal tells its streams)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._signals is not None:
            self._signals.changed(self._run_id)

    async def _every_look(self) -> None:
        while True:
            await asyncio.sleep(min(self._interval_s, LOOK_S))
            self._look()

    def _signature(self, trace: Trace) -> tuple[object, ...]:
        return tuple(
            (s.status, s.attempts, s.cache_hit, None if s.items is None else _ended(s.items))
            for s in trace.steps.values()
        )

    def _look(self) -> None:
        trace = self._trace
        if trace is None:
            return
        seen = self._signature(trace)
        if seen == self._seen:
            return
        now = time.monotonic()
        if now - self._posted_at < self._interval_s:
            return  # posted within the interval: seen again (still changed) at a later look
        self._seen = seen
        # Serialised here, on the event loop, where the engine changes it: the writer's thread
        # only reads the finished dict.
        self._latest = storable_trace(trace.to_json())
        if self._waiting:
            return
        self._waiting = True  # before the post: the writer's thread may take it at once
        self._posted_at = now
        try:
            posted = self._post(self._write)
        except WriterClosed:  # stopping: the run is stored as interrupted anyway
            return
        posted.add_done_callback(self._written)

    def _write(self, session: Session) -> bool:
        # Taken when the batch runs: the newest state, even if it changed after the post.
        self._waiting = False
        latest = self._latest
        if latest is None:
            return False
        return save_snapshot(session, run_id=self._run_id, trace=latest)

    def _written(self, done: Future[Any]) -> None:
        if done.cancelled():
            return
        if (exc := done.exception()) is not None:
            # Progress is a view: the run goes on, and the next change posts again.
            log.warning("could not store the progress of run %s: %r", self._run_id, exc)
        elif done.result() and self._signals is not None:
            self._signals.changed(self._run_id)
