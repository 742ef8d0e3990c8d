"""Keeping items and handing them over in batches: every ``flush_s`` seconds after the first
of a batch, or at once when ``max_batch`` are waiting.

The store's writer commits one transaction at a time, so background records (ended shadow
runs, evaluators' scores) written one commit each would queue ahead of served runs; written in
batches, many cost one commit. ``store`` receives each batch and handles its own failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(
        self,
        store: Callable[[list[T]], Coroutine[object, object, None]],
        *,
        name: str,
        flush_s: float = 0.5,
        max_batch: int = 200,
    ) -> None:
        self._store = store
        self._name = name
        self._flush_s = flush_s
        self._max_batch = max_batch
        self._pending: list[T] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    def add(self, item: T) -> None:
        """Keep ``item`` for the next batch (handed over within ``flush_s``)."""
        self._pending.append(item)
        if len(self._pending) >= self._max_batch:
            self._start_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self._start_flush)

    async def flush(self) -> None:
        """Hand over what is pending now, and wait for every batch under way."""
        self._start_flush()
        while self._flushes:
            await asyncio.wait(set(self._flushes))

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # ``store`` logs its own failures
            await self.flush()

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._store(batch), name=self._name)
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)
