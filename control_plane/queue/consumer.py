"""The worker loop: takes runs off a ``RunQueue`` and runs up to ``concurrency`` at a time.

Delivery is at-least-once, and every choice here follows from it:

- a message is acked only after ``handle`` returned; when ``handle`` raises, nothing is done,
  and the message is reclaimed by some worker once its visibility timeout passes;
- while ``handle`` runs, a heartbeat re-claims the message (``RunQueue.extend``) so that a slow
  but alive worker keeps it; losing it is only logged, since the duplicate run it implies is
  settled by the run's conditional database updates, not here;
- a message delivered more than ``max_deliveries`` times is dead-lettered without running (its
  workers kept dying under it), as is one whose handler raised ``Fatal``;
- Redis being away is an outage to wait out, never a crash: every Redis call is retried with
  capped exponential backoff and one warning per outage. An ack that keeps failing is given up
  on, which costs a redelivery, never a lost run;
- on ``stop`` in-flight handlers get ``stop_grace_s`` to finish and are then cancelled; their
  messages stay pending and other workers reclaim them after the visibility timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from control_plane.queue.streams import Delivery, RunQueue

__all__ = ["Consumer", "Fatal"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_BACKOFF_FIRST_S = 0.05
_BACKOFF_CAP_S = 2.0
_ACK_ATTEMPTS = 5
# OSError: a socket failure redis-py did not wrap; never worth crashing the worker over.
_REDIS_DOWN = (RedisError, OSError)


class Fatal(Exception):
    """Raised by a handler for a run that must not be retried: it is dead-lettered with
    ``error``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _backoff(attempt: int) -> float:
    delay = min(_BACKOFF_CAP_S, _BACKOFF_FIRST_S * 2.0**attempt)
    return delay * random.uniform(0.5, 1.0)  # jitter: workers must not reconnect in lockstep


class Consumer:
    """Consumes a RunQueue with up to `concurrency` runs in flight."""

    def __init__(
        self,
        queue: RunQueue,
        handle: Callable[[Delivery], Awaitable[None]],
        *,
        consumer: str,
        concurrency: int = 4,
        heartbeat_s: float | None = None,
        on_dead: Callable[[Delivery, str], Awaitable[None]] | None = None,
        stop_grace_s: float = 30.0,
        block_ms: int = 1000,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be > 0")
        self.queue = queue
        self.handle = handle
        self.consumer = consumer
        self.concurrency = concurrency
        self.heartbeat_s = queue.visibility_timeout_s / 3 if heartbeat_s is None else heartbeat_s
        self.on_dead = on_dead
        self.stop_grace_s = stop_grace_s
        self.block_ms = block_ms
        self._outage = False

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        tasks: set[asyncio.Task[None]] = set()
        try:
            await self._until_stop(
                self._retrying("create group", self.queue.ensure_group), stopping
            )
            while not stopping.done():
                if len(tasks) >= self.concurrency:
                    await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    continue
                delivery = await self._until_stop(self._receive(), stopping)
                if delivery is not None:
                    task = asyncio.create_task(self._process(delivery))
                    tasks.add(task)
                    task.add_done_callback(functools.partial(self._finished, tasks))
            if tasks:
                await asyncio.wait(tasks, timeout=self.stop_grace_s)
        finally:
            stopping.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, stopping, return_exceptions=True)

    @staticmethod
    def _finished(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # A bug, not a failed run (those are handled in _process): say so, keep consuming.
            log.error("queue: processing a message failed", exc_info=exc)

    async def _until_stop(self, work: Awaitable[T], stopping: asyncio.Task[bool]) -> T | None:
        """``work``'s result, or ``None`` once stop is set (``work`` is then cancelled).

        Cancelling a blocked XREADGROUP may lose the reply of a message Redis just handed to us;
        it then stays pending under this consumer and is reclaimed after the visibility timeout.
        """
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()  # run() itself was cancelled: leave nothing behind
            raise
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        # A result that raced the cancellation is still used rather than left to time out.
        return None if task.cancelled() else task.result()

    async def _receive(self) -> Delivery | None:
        return await self._retrying(
            "receive", lambda: self.queue.receive(self.consumer, block_ms=self.block_ms)
        )

    async def _retrying(
        self, what: str, call: Callable[[], Awaitable[T]], *, attempts: int | None = None
    ) -> T:
        """``call()`` retried while Redis is down (forever unless ``attempts`` is given; the last
        failure is then raised)."""
        attempt = 0
        while True:
            try:
                result = await call()
            except _REDIS_DOWN as exc:
                attempt += 1
                self._failed(what, exc)
                if attempts is not None and attempt >= attempts:
                    raise
                await asyncio.sleep(_backoff(attempt - 1))
                continue
            self._recovered()
            return result

    def _failed(self, what: str, exc: Exception) -> None:
        # One warning per outage, not one per retry of every in-flight run.
        if self._outage:
            log.debug("queue: %s failed again: %s", what, exc)
            return
        self._outage = True
        log.warning(
            "queue: Redis unavailable (%s: %s: %s); retrying", what, type(exc).__name__, exc
        )

    def _recovered(self) -> None:
        if self._outage:
            self._outage = False
            log.info("queue: Redis is reachable again")

    async def _process(self, delivery: Delivery) -> None:
        if delivery.deliveries > self.queue.max_deliveries:
            await self._dead(
                delivery,
                f"delivered {delivery.deliveries} times without finishing; "
                "the workers that took it stopped or crashed",
            )
            return
        heartbeat = asyncio.create_task(self._heartbeat(delivery))
        fatal: str | None = None
        try:
            await self.handle(delivery)
        except Fatal as exc:
            fatal = exc.error
        except Exception:
            log.exception(
                "queue: run %s (message %s, delivery %d) failed; it will be redelivered",
                delivery.run_id,
                delivery.message_id,
                delivery.deliveries,
            )
            return
        finally:
            # Stopped before acking, so that it does not re-claim an acked message and warn.
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        if fatal is not None:
            await self._dead(delivery, fatal)
            return
        try:
            await self._retrying("ack", lambda: self.queue.ack(delivery), attempts=_ACK_ATTEMPTS)
        except _REDIS_DOWN:
            log.warning(
                "queue: could not ack message %s (run %s); it will be redelivered",
                delivery.message_id,
                delivery.run_id,
            )

    async def _dead(self, delivery: Delivery, error: str) -> None:
        try:
            await self._retrying(
                "dead-letter",
                lambda: self.queue.dead_letter(delivery, error),
                attempts=_ACK_ATTEMPTS,
            )
        except _REDIS_DOWN:
            # Still pending, so it comes back after the timeout and meets the same fate then.
            log.warning("queue: could not dead-letter message %s", delivery.message_id)
            return
        log.warning("queue: run %s dead-lettered: %s", delivery.run_id, error)
        if self.on_dead is not None:
            try:
                await self.on_dead(delivery, error)
            except Exception:
                log.exception("queue: on_dead failed for run %s", delivery.run_id)

    async def _heartbeat(self, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                kept = await self.queue.extend(self.consumer, delivery)
            except _REDIS_DOWN as exc:
                # Keep beating: the message is ours until the timeout passes without a beat.
                self._failed("heartbeat", exc)
                continue
            self._recovered()
            if not kept:
                log.warning(
                    "queue: lost message %s (run %s) to another delivery while running it",
                    delivery.message_id,
                    delivery.run_id,
                )
                return
