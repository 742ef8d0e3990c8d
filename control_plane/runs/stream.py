"""Serving ``GET /v1/runs/{id}/events``: one loop per stream, re-reading the run when it changed.

A stream holds no database session: every read is one short unit of work through the
process's admission gate (``UnitGate``, as every request's), so open streams cost the store
only while they read, and a saturated store makes a stream skip a read (it reads again at
the next wake-up or poll), never fail it. The streams of one run wake together, so they share
one read (single flight): fifty viewers of a run cost one read per change, not fifty. And
streams leave half of the gate to requests: while it is half full they skip their reads, so a
burst of wake-ups never turns a run submission into a 503 ``store_busy``. A stream reads again when

* ``RunSignals`` wakes it: the process executing the run committed a progress snapshot or the
  run's end (in this process at once; from another one through Redis), or
* its poll is due: ``ROLLGRAPH_RUN_EVENTS_POLL_S`` (0.25 s) without Redis or while the Redis
  subscription is down, ``ROLLGRAPH_RUN_EVENTS_REDIS_POLL_S`` (2 s) while it is live.

A quiet stream sends ``: keep-alive`` every ``ROLLGRAPH_RUN_EVENTS_HEARTBEAT_S`` (proxies drop
idle connections). It closes after the run's ``end``, or after ``ROLLGRAPH_RUN_EVENTS_MAX_S``
(the client reconnects after the ``retry:`` it was sent, with its ``Last-Event-ID``), or when
the client goes away (Starlette cancels the loop on ``http.disconnect``), or when the server
is told to stop (SIGTERM, SIGINT: ``drain``): uvicorn's graceful shutdown waits for every
response to finish before the app's own shutdown (async runs stored as interrupted, the writer
drained), so an open stream would hold both for up to its lifetime. A process serves at most
``ROLLGRAPH_RUN_EVENTS_MAX_STREAMS`` at once; the next is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from types import FrameType

from fastapi import Response
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from control_plane.errors import NotFound, StoreBusy, Unavailable
from control_plane.runs import reads
from control_plane.runs.events import Cursor, RunEvents
from control_plane.runs.schemas import RunDetail
from control_plane.runs.signals import RunSignals
from control_plane.settings import Settings
from control_plane.store.db import UnitGate

__all__ = ["EVENT_STREAM", "EventStream", "RunStreams", "TooManyStreams"]

EVENT_STREAM = "text/event-stream"
# No proxy buffering (nginx), no storing (an answer to a key), no transformation (compression
# would hold frames back).
_HEADERS = {"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"}


class TooManyStreams(Unavailable):
    """This process serves as many run-event streams as it may; another replica may not."""

    code = "too_many_streams"
    retry_after_s = 5


class EventStream(StreamingResponse):
    media_type = EVENT_STREAM


class _Slot(EventStream):
    """A stream that gives its slot back when it ends, however it ends (the client left
    before the first frame included: the generator may never start)."""

    def __init__(self, streams: RunStreams, content: AsyncIterator[str]) -> None:
        super().__init__(content, headers=_HEADERS)
        self._streams = streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._streams.active -= 1


class RunStreams:
    """The process's run-event streams."""

    def __init__(self, *, units: UnitGate, signals: RunSignals, settings: Settings) -> None:
        self.units = units
        self.signals = signals
        self.settings = settings
        self.active = 0
        self.draining = False
        self._reads: dict[str, asyncio.Future[RunDetail]] = {}  # run id → the read in flight

    def drain(self) -> None:
        """The server is stopping: every stream ends now (its client reconnects, elsewhere,
        with its ``Last-Event-ID``) and new ones are refused."""
        self.draining = True
        self.signals.wake_all()

    def drain_on_exit_signals(self) -> Callable[[], None]:
        """Drain when SIGTERM or SIGINT arrives, then let the server's own handler (uvicorn's)
        stop it; the undo. Only where signals arrive (the main thread) and a server handles
        them: elsewhere (tests, ``TestClient``) nothing changes."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        previous: dict[int, Callable[[int, FrameType | None], object]] = {}

        def handler(signum: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.drain)
            previous[signum](signum, frame)

        for signum in (signal.SIGTERM, signal.SIGINT):
            current = signal.getsignal(signum)
            if callable(current):
                previous[signum] = current
                signal.signal(signum, handler)

        def restore() -> None:
            for signum, prior in previous.items():
                if signal.getsignal(signum) is handler:
                    signal.signal(signum, prior)

        return restore

    async def open(self, *, run_id: str, last_event_id: str | None) -> Response:
        """The response to ``GET /v1/runs/{run_id}/events``: 404 for an unknown run (read
        before anything is sent), 204 when ``last_event_id`` is the end of the run's current
        attempt, else the stream."""
        if self.draining:
            raise Unavailable("the server is shutting down; reconnect (another replica)")
        if self.active >= self.settings.run_events_max_streams:
            raise TooManyStreams(
                f"this process serves {self.active} run-event streams, its limit; retry, or "
                f"poll GET /v1/runs/{run_id}"
            )
        events = RunEvents(Cursor.parse(last_event_id) if last_event_id else None)
        first = await self.units(partial(reads.get_run, run_id=run_id))
        if events.ended_before(first):
            return Response(status_code=204)
        self.active += 1  # given back by the response, however it ends
        return _Slot(self, self._frames(run_id, events, first))

    def _poll_s(self) -> float:
        if self.signals.link is not None and self.signals.subscribed.is_set():
            return self.settings.run_events_redis_poll_s  # notified: the poll is the fallback
        return self.settings.run_events_poll_s

    async def _frames(self, run_id: str, events: RunEvents, first: RunDetail) -> AsyncIterator[str]:
        settings = self.settings
        started = last_sent = time.monotonic()
        yield f"retry: {settings.run_events_retry_ms}\n\n"
        with self.signals.watch(run_id) as woken:
            # A change between the first read and the watch: caught by reading once more now.
            run: RunDetail | None = first
            while True:
                if run is not None:
                    frames = events.update(run)
                    if frames:
                        yield "".join(frames)
                        last_sent = time.monotonic()
                    if events.finished:
                        return
                now = time.monotonic()
                left = started + settings.run_events_max_s - now
                if left <= 0:
                    return  # the client reconnects with its Last-Event-ID
                quiet = last_sent + settings.run_events_heartbeat_s - now
                if quiet <= 0:
                    yield ": keep-alive\n\n"
                    last_sent = now
                    quiet = settings.run_events_heartbeat_s
                if run is not first:
                    await _wait(woken, min(self._poll_s(), left, quiet))
                if self.draining:
                    return  # the server stops: the client reconnects with its Last-Event-ID
                woken.clear()  # before the read: a change during it wakes the next wait
                try:
                    run = await self._read(run_id)
                except NotFound:
                    return  # deleted (retention) while streamed: a reconnect gets the 404
                except Unavailable:
                    run = None  # store busy or away: no frames now; read at the next wake-up

    async def _read(self, run_id: str) -> RunDetail:
        """The run, read once for every stream of it that asks while the read is in flight;
        ``StoreBusy`` without a read while the admission gate is half full."""
        pending = self._reads.get(run_id)
        if pending is None:
            if 2 * self.units.in_flight >= self.units.limit:
                raise StoreBusy("the store's admission gate is half full: streams wait")
            pending = asyncio.ensure_future(self.units(partial(reads.get_run, run_id=run_id)))
            self._reads[run_id] = pending
            pending.add_done_callback(partial(self._read_done, run_id))
        # Shielded: a stream whose client left must not cancel the read of the others.
        return await asyncio.shield(pending)

    def _read_done(self, run_id: str, done: asyncio.Future[RunDetail]) -> None:
        if self._reads.get(run_id) is done:
            del self._reads[run_id]
        if not done.cancelled():
            done.exception()  # retrieved: every stream that awaited it has it already


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        pass
