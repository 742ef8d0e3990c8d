"""Failed key lookups, per process and in memory: unknown keys remembered briefly, and clients
that keep sending bad keys slowed down with 429.

* **Unknown keys.** A well-formed key the store does not know is remembered as unknown (by its
  SHA-256) for ``unknown_ttl_s`` seconds, and only while the registry's generation is the one it
  was looked up at: a flood of made-up keys (or one wrong key retried in a loop) costs one store
  lookup per key and window, not one per request. The registry cache keeps not caching misses;
  this is the negative side, kept apart and bounded on its own.
* **Per-client limit.** Each client address may have ``failures_per_s`` store lookups a second
  come back unknown (a token bucket holding that many, refilled at that rate). A client over it
  gets 429 with ``Retry-After`` instead of its next lookup. Only lookups count: a key already in
  the process's cache (known or known-unknown) or malformed costs nothing and guesses nothing, so
  it is answered as before, and one bad client behind a shared address does not lock out the
  others' cached keys.

Both tables are LRUs of ``capacity`` entries: an attacker cycling through addresses can evict
buckets (each new address starts with a full bucket) but cannot grow memory. The limits are per
process: N replicas admit N times as many failures. Behind a proxy the client address is the
proxy's unless uvicorn is told to trust its ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["FAILURES_PER_S", "UNKNOWN_TTL_S", "FailedKeys"]

# A person or a misconfigured client with a wrong key fails a few times a second at most; ten
# a second per address leaves them room and caps a single address at 600 guesses a minute
# (against 256-bit secrets: nothing), and the store at 10 lookups a second per address.
FAILURES_PER_S: Final = 10.0
UNKNOWN_TTL_S: Final = 5.0
_CAPACITY: Final = 10_000


class FailedKeys:
    """The process's memory of unknown keys and of each client's recent failures.

    Safe to use from the event loop and from threads (one lock, no I/O under it).
    """

    def __init__(
        self,
        *,
        failures_per_s: float = FAILURES_PER_S,
        unknown_ttl_s: float = UNKNOWN_TTL_S,
        capacity: int = _CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures_per_s <= 0 or unknown_ttl_s <= 0 or capacity <= 0:
            raise ValueError("failures_per_s, unknown_ttl_s and capacity must be positive")
        self.failures_per_s = failures_per_s
        self.unknown_ttl_s = unknown_ttl_s
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        # key digest -> (expires at, registry generation it was looked up at)
        self._unknown: OrderedDict[str, tuple[float, int]] = OrderedDict()
        # client address -> (tokens left, when counted)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    # -- unknown keys ------------------------------------------------------------------------
    def is_known_unknown(self, digest: str, *, generation: int) -> bool:
        """Whether the key with this digest was looked up and not found, recently, at the
        registry generation that is still the newest."""
        now = self._clock()
        with self._lock:
            entry = self._unknown.get(digest)
            if entry is None:
                return False
            expires, seen_at = entry
            if expires <= now or seen_at != generation:
                del self._unknown[digest]
                return False
            return True

    def remember_unknown(self, digest: str, *, generation: int) -> None:
        with self._lock:
            self._unknown[digest] = (self._clock() + self.unknown_ttl_s, generation)
            self._unknown.move_to_end(digest)
            while len(self._unknown) > self.capacity:
                self._unknown.popitem(last=False)

    # -- per-client limit --------------------------------------------------------------------
    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (self.failures_per_s, now))
        return min(self.failures_per_s, tokens + (now - at) * self.failures_per_s)

    def retry_after(self, client: str) -> int | None:
        """Seconds ``client`` must wait before its next failure is admitted, or ``None`` when it
        may fail now (the answer to give instead of a lookup)."""
        now = self._clock()
        with self._lock:
            tokens = self._tokens(client, now)
        if tokens >= 1:
            return None
        return max(1, math.ceil((1 - tokens) / self.failures_per_s))

    def record_failure(self, client: str) -> int | None:
        """Count one failed lookup for ``client``; the ``Retry-After`` seconds when it is now over
        its limit, else ``None``."""
        now = self._clock()
        with self._lock:
            tokens = self._tokens(client, now)
            over = tokens < 1
            self._buckets[client] = (max(tokens - 1, -self.failures_per_s), now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        if not over:
            return None
        return max(1, math.ceil((1 - max(tokens - 1, -self.failures_per_s)) / self.failures_per_s))

    def __len__(self) -> int:
        return len(self._unknown) + len(self._buckets)
