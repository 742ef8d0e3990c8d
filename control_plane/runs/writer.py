"""Group commit: the writes of many runs in one transaction, off the event loop.

Every finished run is a few inserts; a transaction per run spends most of its time beginning,
committing and hopping threads. ``BatchWriter`` owns one thread that takes whatever units of
work are waiting, applies them in one transaction and then wakes each caller with its result.
Nothing waits for a batch to fill: an idle writer commits the first unit at once, and batches
grow only while a commit is in progress, so batching adds no latency and under load turns N
commits into one (the group commit of database logs).

A caller awaiting ``submit`` gets its result only after the commit, so a response built from it
names a run that can be read back; ``post`` is the same without waiting (steps of an async run,
written as they complete). Units run in submission order, so a run's steps are committed no
later than the run that names them.

When a batch fails, its units are retried one transaction each, so one bad unit fails alone.

Admission: a writer whose backlog passed ``max_backlog`` units (four full batches by default)
is not keeping up with the store (a stalled PostgreSQL, a SQLite file locked by another writer):
``admit`` then refuses new runs with 503 ``store_busy`` at once, while the work already accepted
(finishing runs, their steps) is still queued and written.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Final, TypeVar

from sqlmodel import Session

from control_plane.errors import StoreBusy
from control_plane.store.db import SessionFactory, session_scope

__all__ = ["BatchWriter", "WriterClosed"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Session], Any]
_STOP: Final = object()


class WriterClosed(RuntimeError):
    """The writer is stopping and takes no more work."""


class BatchWriter:
    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        max_batch: int = 256,
        max_backlog: int | None = None,
    ) -> None:
        self._factory = session_factory
        self._max_batch = max_batch
        self.max_backlog = 4 * max_batch if max_backlog is None else max_backlog
        self._queue: queue.SimpleQueue[tuple[Work, Future[Any]] | object] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()  # orders "closed?" against enqueueing
        self.batches = 0  # committed transactions, for tests and benchmarks
        self.units = 0
        self._thread = threading.Thread(target=self._loop, name="rollgraph-writer", daemon=True)
        self._thread.start()

    def post(self, work: Callable[[Session], T]) -> Future[T]:
        """Queue ``work``; the returned future resolves after its transaction commits."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosed("the run writer is stopping")
            self._queue.put((work, future))
        return future

    @property
    def backlog(self) -> int:
        """Units posted and not yet taken by the writer thread."""
        return self._queue.qsize()

    def admit(self) -> None:
        """Refuse new work (``StoreBusy``) while the backlog is past ``max_backlog``."""
        if self.backlog >= self.max_backlog:
            raise StoreBusy(
                f"the store is not keeping up ({self.backlog} writes waiting in this process); "
                "nothing was changed: retry"
            )

    async def submit(self, work: Callable[[Session], T]) -> T:
        """Apply ``work`` in the next batch and return its result once committed."""
        return await asyncio.wrap_future(self.post(work))

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error("the run writer did not finish within %.0f s", timeout_s)

    # -- the writer thread --------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _write(self, batch: list[tuple[Work, Future[Any]]]) -> None:
        live = [(w, f) for w, f in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            with session_scope(self._factory) as session:
                results = [work(session) for work, _ in live]
        except Exception as exc:
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            # Find the unit that broke the batch: each one alone, in its own transaction.
            for work, future in live:
                try:
                    with session_scope(self._factory) as session:
                        result = work(session)
                except Exception as exc:
                    future.set_exception(exc)
                else:
                    self._count(1)
                    future.set_result(result)
            return
        self._count(len(live))
        for (_, future), result in zip(live, results, strict=True):
            future.set_result(result)

    def _count(self, units: int) -> None:
        self.batches += 1
        self.units += units
