""" "Run N changed in the store": the wake-up calls behind ``GET /v1/runs/{id}/events``.

The process executing a run says so where it commits a change a follower would show: a
progress snapshot (``runs.progress``) and the run's end (``Runs.finish``, ``give_back``). A
signal carries no state, only the run id: the stream that wakes re-reads the run from the
store (the versioned read, as with ``registry.notify``), so a lost, late or repeated signal can
delay an event but never change, drop or repeat one.

* In this process, ``changed`` sets the ``asyncio.Event`` of every stream of that run at once.
* With Redis, it is also published on ``<prefix>:run-events`` (one channel, the run id as the
  message): every replica subscribes (lazily, once the first stream opens there) and wakes its
  own streams of that run, so a replica that is not executing the run streams it promptly. One
  channel rather than one per run: a message is a few bytes, at most one per run and
  ``ROLLGRAPH_PROGRESS_INTERVAL_S``, and no SUBSCRIBE round trip delays a new stream.
* Streams poll the store as well (``ROLLGRAPH_RUN_EVENTS_POLL_S``; with Redis the longer
  ``ROLLGRAPH_RUN_EVENTS_REDIS_POLL_S``): without Redis another replica's runs are seen that
  way, and with it a lost message or a Redis outage only costs latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from control_plane.store.redis import RedisLink, RedisUnavailable

__all__ = ["RunSignals"]

log = logging.getLogger(__name__)

_RESUBSCRIBE_S = 1.0


class RunSignals:
    """Wake-ups per run id, in this process and (with ``link``) across processes."""

    def __init__(self, link: RedisLink | None = None) -> None:
        self.link = link
        self.channel = link.key("run-events") if link is not None else None
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):  # built on the loop, as a process's runtime is
            self._loop = asyncio.get_running_loop()
        self._listener: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.subscribed = asyncio.Event()  # the Redis subscription is live (for tests)

    def start(self) -> None:
        """Bind to the running loop (when not built on it): ``changed`` is then safe from any
        thread."""
        self._loop = asyncio.get_running_loop()

    @contextlib.contextmanager
    def watch(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``run_id`` changes, for as long as the block lasts (the
        stream clears it before each read, so a change during the read is not lost)."""
        if self._loop is None:
            self.start()
        self._listen()
        event = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiters.get(run_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiters[run_id]

    @property
    def streams(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def changed(self, run_id: str) -> None:
        """``run_id`` changed in the store (committed): wake its streams here and, with Redis,
        everywhere. Safe from any thread (the batch writer's callbacks run in its thread)."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._closed:
            return  # nobody streams in a process that never started them
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._announce(run_id)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody streams
                loop.call_soon_threadsafe(self._announce, run_id)

    def _announce(self, run_id: str) -> None:
        self._wake(run_id)
        if self.link is None or self._closed:
            return
        task = asyncio.create_task(self._publish(run_id))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def wake_all(self) -> None:
        """Wake every stream in this process (the server is stopping)."""
        for waiting in self._waiters.values():
            for event in waiting:
                event.set()

    def _wake(self, run_id: str) -> None:
        for event in self._waiters.get(run_id, ()):
            event.set()

    async def _publish(self, run_id: str) -> None:
        assert self.link is not None
        assert self.channel is not None
        channel = self.channel
        # Unavailable: the other replicas' streams poll the store instead.
        with contextlib.suppress(RedisUnavailable):
            await self.link.call("run_events.publish", lambda c: c.publish(channel, run_id))

    # -- the subscription (a server's, once it streams) -----------------------------------------
    def _listen(self) -> None:
        if self.link is None or self._listener is not None or self._closed:
            return
        self._listener = asyncio.create_task(self._subscribe(), name="run-event-notifications")

    async def _subscribe(self) -> None:
        assert self.link is not None
        assert self.channel is not None
        # A client of its own: the link's socket timeout (fail fast) would end an idle
        # subscription every half second.
        client = aioredis.Redis.from_url(
            self.link.url, socket_connect_timeout=self.link.timeout_s, health_check_interval=15
        )
        try:
            while True:
                try:
                    async with client.pubsub() as pubsub:
                        await pubsub.subscribe(self.channel)
                        self.subscribed.set()
                        async for message in pubsub.listen():
                            if message.get("type") == "message":
                                data = message.get("data")
                                if isinstance(data, bytes):
                                    self._wake(data.decode(errors="replace"))
                except (RedisError, OSError) as exc:
                    self.subscribed.clear()  # streams poll at the short interval meanwhile
                    log.debug("run event notifications interrupted (%r); resubscribing", exc)
                    await asyncio.sleep(_RESUBSCRIBE_S)
                except Exception:  # never a dead listener that streams take for a live one
                    self.subscribed.clear()
                    log.exception("run event notifications failed; resubscribing")
                    await asyncio.sleep(_RESUBSCRIBE_S)
        finally:
            await client.aclose()

    async def aclose(self) -> None:
        self._closed = True
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pending in list(self._publishing):
            pending.cancel()
