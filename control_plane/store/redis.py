"""The process's link to Redis (``REDIS_URL``), and what happens when Redis is away.

Redis carries what several replicas and workers must share: the step cache, the run queue and
registry change notifications. It is not the system of record (the store is), so an outage must
degrade, not break: a synchronous run goes on with its local cache, and only what cannot be done
without Redis (accepting an async run onto the queue) is refused with a 503.

Every call goes through ``RedisLink.call``, a circuit breaker:

* a call that fails or takes longer than ``timeout_s`` raises ``RedisUnavailable`` (a 503 where
  it reaches a client) and is counted in ``rollgraph_redis_errors_total{operation}``; a refused
  or dropped connection marks Redis **down** for ``retry_s`` at once, a timeout only when
  ``trip_after`` calls in a row timed out: on a process short of CPU one answer read late (the
  event loop lagging past the timeout) refused every async submission for a second, 23 in a
  10-minute soak, while Redis answered in microseconds. An outage is logged once, not per call;
* while down, calls fail at once without touching the network, so a dead Redis costs a sync run
  nothing (no connect timeout per step); the first call after ``retry_s`` probes it again;
* a call Redis answers with an error about the call itself (wrong arguments, an invalid stream
  id, a key of the wrong type) is not an outage: Redis is up and answered. It raises
  ``RedisRejected`` and leaves the breaker closed; counting it would let one bad request
  (``?before=0-0`` on the dead letters) refuse every client's async runs. Errors that report
  Redis' own state (out of memory, read-only replica, loading, busy, cluster down) are outages.

redis-py's own retries are off: the breaker decides, and a caller that can fall back wants the
answer now rather than after three reconnect attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterDownError,
    DataError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from control_plane.errors import Unavailable
from control_plane.metrics import Metrics
from control_plane.settings import Settings

__all__ = ["RedisLink", "RedisRejected", "RedisUnavailable"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RedisUnavailable(Unavailable):
    """Redis did not answer (or the breaker is open): a 503 with ``Retry-After``."""

    code = "redis_unavailable"


class RedisRejected(RedisUnavailable):
    """Redis refused this one call (its arguments, a key of the wrong type). A subclass of
    ``RedisUnavailable`` so that every caller that falls back without Redis still does; but
    it is no outage, so the breaker stays closed, and a retry would fail the same way: a 502
    without ``Retry-After``. Routes validate what they pass to Redis, so a client meets this
    only through a bug."""

    status_code = 502
    code = "redis_rejected"

    def headers(self) -> dict[str, str]:
        return {}


# Error replies that describe Redis' state, not the call: plain ``ResponseError``s whose first
# word is one of these (redis-py has no class for them), and the classes below.
_UNABLE_REPLIES = frozenset({"BUSY", "MISCONF", "NOREPLICAS", "UNBLOCKED"})
_UNABLE_CLASSES = (
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
    NoPermissionError,
)


def _rejected(exc: BaseException) -> bool:
    """Whether ``exc`` is Redis (or redis-py) refusing the call itself rather than an outage."""
    if isinstance(exc, DataError | WatchError):  # redis-py refused the arguments; a lost race
        return True
    if isinstance(exc, ResponseError) and not isinstance(exc, _UNABLE_CLASSES):
        return str(exc).split(" ", 1)[0] not in _UNABLE_REPLIES
    return False


class RedisLink:
    """One client (a connection pool) per process, behind a circuit breaker."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "rollgraph",
        timeout_s: float = 0.5,
        retry_s: float = 1.0,
        trip_after: int = 2,
        metrics: Metrics | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.metrics = metrics
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=15,
        )
        self.trip_after = trip_after
        self._down_until = 0.0  # monotonic time before which calls fail fast
        self._down = False
        self._timeouts = 0  # calls in a row that timed out

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: Metrics | None = None) -> RedisLink:
        """The link ``settings`` configure (``redis_url`` must be set)."""
        assert settings.redis_url is not None
        return cls(
            settings.redis_url,
            prefix=settings.redis_prefix,
            timeout_s=settings.redis_timeout_s,
            metrics=metrics,
        )

    def key(self, *parts: str) -> str:
        """A key in this deployment's namespace: ``<prefix>:<part>:<part>``."""
        return ":".join((self.prefix, *parts))

    @property
    def up(self) -> bool:
        """False from a failed call until a call succeeds again."""
        return not self._down

    async def call(self, operation: str, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """``work(client)`` within the timeout; ``RedisUnavailable`` when Redis is away."""
        if self._down and time.monotonic() < self._down_until:
            raise RedisUnavailable(f"Redis at {self._safe_url} is unavailable; retry shortly")
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await work(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            if _rejected(exc):
                log.warning("Redis refused %s: %s: %s", operation, type(exc).__name__, exc)
                self._down = False  # it answered: whatever this call did wrong, Redis is up
                raise RedisRejected(
                    f"Redis refused {operation} ({type(exc).__name__}: {exc})"
                ) from exc
            self._failed(operation, exc)
            raise RedisUnavailable(
                f"Redis at {self._safe_url} is unavailable ({type(exc).__name__}); retry shortly"
            ) from exc
        self._timeouts = 0
        if self._down:
            self._down = False
            log.warning("Redis at %s answers again", self._safe_url)
        return result

    def _failed(self, operation: str, exc: BaseException) -> None:
        if self.metrics is not None:
            self.metrics.redis_errors.labels(operation).inc()
        if isinstance(exc, TimeoutError | RedisTimeoutError):
            self._timeouts += 1
            if self._timeouts < self.trip_after:
                return
        if not self._down:
            log.warning(
                "Redis at %s is unavailable (%s: %s); falling back where possible",
                self._safe_url,
                type(exc).__name__,
                exc,
            )
        self._down = True
        self._down_until = time.monotonic() + self.retry_s

    @property
    def _safe_url(self) -> str:
        # Never log a password: redis://:secret@host → redis://host
        head, _, rest = self.url.partition("://")
        return f"{head}://{rest.rpartition('@')[2]}"

    async def ping(self) -> bool:
        try:
            await self.call("ping", lambda c: c.ping())
        except RedisUnavailable:
            return False
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
