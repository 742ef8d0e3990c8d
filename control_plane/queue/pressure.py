"""Back-pressure on the run queue: async submissions are refused (429 ``queue_full``, with
``Retry-After``) while the queue is deeper or older than the deployment can drain.

Why: workers take runs at a fixed rate (their ``worker_concurrency`` slots divided by how long a
run takes). Offered more than that, the backlog grows without bound, every accepted run waits
longer than the last, and the client learns nothing until its run is failed for waiting past its
deadline. Refusing at the door tells the client at once, while the runs already accepted still
run in reasonable time.

Two limits, either of which refuses (0 turns one off): ``queue_max_depth`` runs waiting for a
worker, and ``queue_max_wait_s`` for the oldest of them. Each submission would otherwise cost a
Redis round trip, so ``QueuePressure`` reuses a reading for up to ``FRESH_S``: the limits are
soft by that much, which is what a limit on a queue draining at tens of runs a second needs.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import ClassVar, Final

from control_plane.errors import ControlPlaneError
from control_plane.queue.streams import QueueStats

__all__ = ["FRESH_S", "QueueFull", "QueuePressure", "refusal"]

FRESH_S: Final = 0.5
# A client told to come back much later than this would rather know it is refused for long.
_MAX_RETRY_AFTER_S: Final = 60


class QueueFull(ControlPlaneError):
    """The run queue holds more, or older, runs than the configured limits: nothing was
    stored; retry after ``Retry-After`` seconds (or run synchronously)."""

    status_code: ClassVar[int] = 429
    code: ClassVar[str] = "queue_full"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


def refusal(stats: QueueStats, *, max_depth: int, max_wait_s: float) -> QueueFull | None:
    """Why a submission is refused with the queue as ``stats`` says, or ``None``."""
    if max_wait_s > 0 and stats.oldest_wait_s > max_wait_s:
        # The oldest waiting run needs that much more draining before the wait is back under
        # the limit (no sooner, as new runs keep arriving behind it).
        over = stats.oldest_wait_s - max_wait_s
        return QueueFull(
            f"the run queue is full: its oldest run has waited {stats.oldest_wait_s:.0f} s for "
            f"a worker (limit {max_wait_s:g} s); retry later or add workers",
            retry_after_s=_clamp(over),
        )
    if max_depth > 0 and stats.waiting >= max_depth:
        # At the limit, a retry can pass once a few runs were taken; the wait says how fast
        # this queue moves (a run waits about as long as the backlog ahead of it takes).
        per_run = stats.oldest_wait_s / stats.waiting if stats.waiting else 0.0
        return QueueFull(
            f"the run queue is full: {stats.waiting} runs wait for a worker "
            f"(limit {max_depth}); retry later or add workers",
            retry_after_s=_clamp(per_run * (stats.waiting - max_depth + 1)),
        )
    return None


def _clamp(seconds: float) -> int:
    return max(1, min(_MAX_RETRY_AFTER_S, math.ceil(seconds)))


class QueuePressure:
    """The producer's view of the queue: ``check`` raises ``QueueFull`` past a limit."""

    def __init__(
        self, read: Callable[[], Awaitable[QueueStats]], *, max_depth: int, max_wait_s: float
    ) -> None:
        self._read = read
        self.max_depth = max_depth
        self.max_wait_s = max_wait_s
        self._last: tuple[float, QueueStats] | None = None
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_depth > 0 or self.max_wait_s > 0

    async def check(self) -> None:
        """Refuse (``QueueFull``) when the queue is past a limit, by a reading at most
        ``FRESH_S`` old; errors reading the queue propagate (the caller's breaker counts them)."""
        if not self.enabled:
            return
        refused = refusal(
            await self._reading(), max_depth=self.max_depth, max_wait_s=self.max_wait_s
        )
        if refused is not None:
            raise refused

    async def _reading(self) -> QueueStats:
        # One reading in flight at a time: a burst of submissions shares it.
        async with self._lock:
            now = time.monotonic()
            if self._last is None or now - self._last[0] > FRESH_S:
                self._last = (now, await self._read())
            return self._last[1]
