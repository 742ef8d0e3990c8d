"""A per-process cache of what requests read from the registry (API keys, label routes, pinned
versions), kept fresh by the registry's generation.

Every audited change increments ``registry_state.generation`` in its own transaction
(``bump_generation``, called by ``audit.service.record``), so the generation follows commit order.
The cache knows the newest generation committed that it has seen and only ever raises it; an
entry remembers the generation it was read at and is served only while that is still the newest.
The newest generation becomes known three ways:

* a change committed by a session of this process's factory: its ``after_commit`` hook hands the
  generation the change wrote to the cache before the writer's response is sent, so the very next
  request reads the store again;
* a background task reads the generation every ``poll_s`` seconds: changes made by other worker
  processes and replicas are seen within about one interval;
* a cache fill reads the generation first, then the data, in one unit of work.

A fill that read old data before a change and stores it after the cache learnt of the change is
dropped: its generation is already behind. Errors and unknown keys are never cached, so
requests with made-up keys cannot grow the cache, which is an LRU of ``capacity`` entries anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, TypeVar

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.orm import SessionTransaction, sessionmaker
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from control_plane.store.db import SessionFactory, session_scope
from control_plane.store.generation import GENERATION_INFO_KEY, UNKNOWN_GENERATION, read_generation

__all__ = ["RegistryCache"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP_WAIT_S: Final = 5.0


class _Entry:
    __slots__ = ("generation", "value")

    def __init__(self, generation: int, value: object) -> None:
        self.generation = generation
        self.value = value


class RegistryCache:
    """Registry reads by key, valid while the registry's generation is the one they were read at.

    ``start`` it in the app's lifespan (it watches the session factory's commits and polls) and
    ``aclose`` it on shutdown. Lookups and stores are safe from the event loop and from threads.
    """

    def __init__(
        self, session_factory: SessionFactory, *, poll_s: float, capacity: int = 4096
    ) -> None:
        if poll_s <= 0 or capacity <= 0:
            raise ValueError("poll_s and capacity must be positive")
        self._factory = session_factory
        self._poll_s = poll_s
        self.capacity = capacity
        self._generation = UNKNOWN_GENERATION
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        # Commits raise the generation from worker threads while the event loop reads entries.
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._failing = False
        self._watched: sessionmaker[Any] | None = None
        self._listeners: list[Callable[[int], None]] = []

    @property
    def generation(self) -> int:
        """The newest generation this process knows to be committed (-1 before the first read)."""
        return self._generation

    def __len__(self) -> int:
        return len(self._entries)

    # -- entries -----------------------------------------------------------------------------
    def observe(self, generation: int) -> None:
        """``generation`` is committed: entries read before it can no longer be served."""
        with self._lock:
            if generation > self._generation:
                self._generation = generation
                # Every entry is behind now and can never become valid again: free them.
                self._entries.clear()

    def get(self, key: Hashable, kind: type[T]) -> T | None:
        """The value stored under ``key`` if it is still valid and a ``kind``, else ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.generation != self._generation:
                return None
            self._entries.move_to_end(key)
        value = entry.value
        return value if isinstance(value, kind) else None

    def put(self, key: Hashable, value: object, *, generation: int) -> None:
        """Store ``value`` as read at ``generation``; dropped when a newer one is known already
        (a change committed while it was being read)."""
        self.observe(generation)
        with self._lock:
            if generation != self._generation:
                return
            self._entries[key] = _Entry(generation, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    async def fetch(
        self, key: Hashable, kind: type[T], read: Callable[[Session], T | None]
    ) -> T | None:
        """The cached value, or ``read`` in one unit of work in a worker thread (the generation
        read first), stored unless it is ``None``. ``read``'s exceptions are not cached."""
        hit = self.get(key, kind)
        if hit is not None:
            return hit
        generation, value = await run_in_threadpool(functools.partial(self._read, read))
        if value is not None:
            self.put(key, value, generation=generation)
        return value

    def _read(self, read: Callable[[Session], T | None]) -> tuple[int, T | None]:
        with session_scope(self._factory) as session:
            # Generation first: the data read after it is at least that new, so an entry never
            # claims to be newer than it is.
            generation = read_generation(session)
            return generation, read(session)

    # -- freshness ---------------------------------------------------------------------------
    def watch(self) -> None:
        """Learn of this process's own changes when they commit, before their response."""
        factory = self._factory
        if not isinstance(factory, sessionmaker):
            raise TypeError("RegistryCache.watch needs the sessionmaker the app builds")
        event.listen(factory, "after_commit", self._after_commit)
        event.listen(factory, "after_soft_rollback", self._after_soft_rollback)
        self._watched = factory

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(generation)`` when this process commits a registry change (in the
        committing thread, after the cache has learnt of it): for telling other processes."""
        self._listeners.append(listener)

    def _after_commit(self, session: Session) -> None:
        generation = session.info.pop(GENERATION_INFO_KEY, None)
        if generation is not None:
            self.observe(generation)
            for listener in self._listeners:
                try:
                    listener(generation)
                except Exception:  # the commit happened; a failing listener must not undo it
                    log.exception("a registry change listener failed")

    @staticmethod
    def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
        if previous.parent is None:  # the whole transaction, and its increment, are gone
            session.info.pop(GENERATION_INFO_KEY, None)

    async def poll(self) -> None:
        """Read the generation once, off the event loop; a store error is logged, never raised,
        and the last generation kept (the next poll retries)."""
        try:
            # abandon_on_cancel: a stop that gives up waiting (see aclose) is not blocked by it.
            generation = await anyio.to_thread.run_sync(self._poll_read, abandon_on_cancel=True)
        except Exception as exc:
            if not self._failing:  # once per outage, not ten times a second
                log.warning("cannot read the registry generation (will retry): %r", exc)
            self._failing = True
            return
        if self._failing:
            log.warning("reading the registry generation works again")
            self._failing = False
        self.observe(generation)

    def _poll_read(self) -> int:
        with session_scope(self._factory) as session:
            return read_generation(session)

    async def _poll_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await stop.wait()

    async def start(self) -> None:
        """Watch the session factory and start polling the generation."""
        if self._watched is None:
            self.watch()
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(
                self._poll_forever(self._stop), name="registry-generation-poll"
            )

    @property
    def polling(self) -> bool:
        """Whether the poller runs (it survives store errors; only ``aclose`` ends it)."""
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Stop polling and watching, and drop every entry: nothing could refresh them."""
        task, self._task = self._task, None
        if task is not None:
            # Let a read in flight finish, so its connection goes back to the pool before the
            # engine is disposed; but a store that does not answer must not hang shutdown.
            self._stop.set()
            done, _ = await asyncio.wait({task}, timeout=_STOP_WAIT_S)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._watched is not None:
            event.remove(self._watched, "after_commit", self._after_commit)
            event.remove(self._watched, "after_soft_rollback", self._after_soft_rollback)
            self._watched = None
        with self._lock:
            self._entries.clear()
