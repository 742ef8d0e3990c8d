"""A durable run queue: one Redis Stream read by one consumer group of workers.

Design, and why:

- **At-least-once.** ``receive`` hands a message to one consumer and Redis keeps it in the
  group's pending entries list (PEL) until ``ack``. A worker that crashes never acks, so its runs
  are not lost; a worker that crashes after the run finished but before the ack runs it twice,
  which the run's own conditional database updates must tolerate.
- **Visibility timeout via XAUTOCLAIM.** Nothing pushes a dead worker's messages back: the next
  ``receive`` of any worker first claims a pending message idle for longer than the timeout and
  only then reads new ones, so stuck runs are retried ahead of the backlog. XAUTOCLAIM bumps the
  delivery counter, which is what ``max_deliveries`` (dead-lettering) counts.
- **Heartbeat via XCLAIM JUSTID.** A slow but alive worker keeps its message by re-claiming it
  to itself, which resets the idle time; JUSTID leaves the delivery counter alone, so a long run
  is not mistaken for a crashing one. The ownership check and the claim are one Lua script: a
  bare XCLAIM would silently steal a message another worker already reclaimed.
- **Dead letters with MULTI.** Adding to the dead-letter stream and removing the original from
  the PEL happen in one transaction, so a message is never both dead-lettered and redelivered.
- Acked messages are deleted, so the stream holds only queued and in-flight runs; MAXLEN ~ is a
  safety cap against unbounded growth, not a retention policy (past it the oldest *queued* runs
  are dropped, so size it well above any plausible backlog).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

__all__ = ["DeadLetter", "Delivery", "QueueStats", "RunQueue"]

# The cursor walk lives in Lua so that a claim and its delivery count are read atomically, and so
# that finding an idle message among many live ones costs one round trip. XAUTOCLAIM COUNT 1
# looks at no more than 10 PEL entries per call, hence the loop; ARGV[5] bounds the script's run
# time on a huge PEL (the cursor is kept by the caller and the walk resumes on the next call).
# Redis 6.2 returned entries deleted from the stream with nil fields: those are acked and skipped
# (7.0+ drops them from the PEL itself and reports them apart).
_RECLAIM = """
local cursor = ARGV[4]
for _ = 1, tonumber(ARGV[5]) do
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', 1)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' then
      if e[2] then
        local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
        return {cursor, e[1], e[2], p[1][4]}
      end
      redis.call('XACK', KEYS[1], ARGV[1], e[1])
    end
  end
  if cursor == '0-0' then break end
end
return {cursor}
"""

# The delivery count must match too: if this same consumer reclaimed its own message (its
# heartbeat stalled past the timeout), the older handler has lost it even though the owner is
# unchanged, and the newer delivery is the one that keeps it.
_EXTEND = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] or p[1][4] ~= tonumber(ARGV[4]) then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""

# One round trip at one instant: length, the group's pending count and last-delivered id (entries
# after it wait), the oldest waiting id (its ms: when it was queued) and Redis's clock, so the wait
# is measured on one clock whatever the servers' say. No group yet: every entry waits.
_STATS = """
local length = redis.call('XLEN', KEYS[1])
local dead = redis.call('XLEN', KEYS[2])
local now = redis.call('TIME')
local pending, last = 0, '0-0'
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, g in ipairs(groups) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == ARGV[1] then
      pending = f['pending']
      last = f['last-delivered-id']
    end
  end
end
local oldest = ''
if length > pending then
  local r = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)
  if #r > 0 then oldest = r[1][1] end
end
return {length, pending, dead, now[1], now[2], oldest}
"""

_MAX_SCANS = 100


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: str
    run_id: str
    deliveries: int  # how many times this message has been delivered (1 the first time)
    traceparent: str | None = None  # the submitting request's trace context (W3C), if traced


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str  # entry id in the dead-letter stream
    run_id: str
    error: str
    deliveries: int
    at: datetime  # UTC, when it was dead-lettered


@dataclass(frozen=True, slots=True)
class QueueStats:
    length: int  # entries in the stream: queued plus in flight (acked ones are deleted)
    pending: int  # delivered and not acked yet
    dead: int
    waiting: int = 0  # not delivered to any worker yet (acked ones are deleted: length - pending)
    oldest_wait_s: float = 0.0  # how long the oldest of those has waited, by Redis's clock


def _text(value: bytes | str) -> str:
    # The caller chooses decode_responses; accept both.
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: Any) -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {_text(k): _text(v) for k, v in raw.items()}
    flat = list(raw)  # Lua replies give the fields as [k1, v1, k2, v2, ...]
    return {_text(k): _text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


class RunQueue:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "rollgraph",
        group: str = "workers",
        visibility_timeout_s: float = 30.0,
        max_deliveries: int = 3,
        max_length: int = 100_000,
    ) -> None:
        if visibility_timeout_s <= 0 or max_deliveries < 1 or max_length < 1:
            raise ValueError("visibility_timeout_s, max_deliveries and max_length must be > 0")
        self.client = client
        self.stream = f"{prefix}:runs"
        self.dead_stream = f"{prefix}:runs:dead"
        self.group = group
        self.visibility_timeout_s = visibility_timeout_s
        self.max_deliveries = max_deliveries
        self.max_length = max_length
        self._reclaim = client.register_script(_RECLAIM)
        self._extend = client.register_script(_EXTEND)
        self._stats = client.register_script(_STATS)
        self._cursor = "0-0"

    async def ensure_group(self) -> None:
        """Create the stream and the group; id 0 so runs enqueued before any worker existed are
        read too."""
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, run_id: str, *, traceparent: str | None = None) -> str:
        """Queue ``run_id``; ``traceparent`` (W3C) is the submitting request's trace context,
        which the worker's spans of the run continue."""
        # Never trimmed: a trim would drop runs nobody received yet (acked entries are deleted,
        # so the stream holds only the backlog). ``max_length`` bounds the dead-letter stream.
        entry: dict[FieldT, EncodableT] = {"run_id": run_id}
        if traceparent is not None:
            entry["traceparent"] = traceparent
        message_id = await self.client.xadd(self.stream, entry)
        return _text(message_id)

    async def receive(self, consumer: str, *, block_ms: int = 1000) -> Delivery | None:
        """A reclaimed message (idle past the visibility timeout) or else a new one, waiting up to
        ``block_ms`` for it (0: do not wait); ``None`` when there is none."""
        try:
            return await self._receive(consumer, block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
        # The stream key was deleted under us (FLUSHDB, a stray DEL): recreating it beats
        # failing on every call until someone restarts the workers.
        await self.ensure_group()
        return await self._receive(consumer, block_ms)

    async def _receive(self, consumer: str, block_ms: int) -> Delivery | None:
        timeout_ms = max(1, round(self.visibility_timeout_s * 1000))
        reply = await self._reclaim(
            keys=[self.stream],
            args=[self.group, consumer, timeout_ms, self._cursor, _MAX_SCANS],
        )
        self._cursor = _text(reply[0])
        if len(reply) > 1:
            return await self._delivery(reply[1], reply[2], int(reply[3]))
        # RESP2 gives [[stream, entries]], RESP3 {stream: entries}; the union of both types is
        # not worth narrowing for mypy.
        read: Any = await self.client.xreadgroup(
            self.group,
            consumer,
            {self.stream: ">"},
            count=1,
            block=block_ms if block_ms > 0 else None,
        )
        streams = read.values() if isinstance(read, Mapping) else [s[1] for s in read or []]
        for entries in streams:
            for entry in entries:
                if entry and not isinstance(entry[0], bytes | str):
                    entry = entry[0]  # redis-py's RESP3 parsing nests the entries once more
                # ">" only ever returns messages no consumer of the group has seen.
                return await self._delivery(entry[0], entry[1], 1)
        return None

    async def _delivery(self, message_id: Any, raw: Any, deliveries: int) -> Delivery | None:
        fields = _fields(raw)
        run_id = fields.get("run_id", "")
        delivery = Delivery(_text(message_id), run_id, deliveries, fields.get("traceparent"))
        if not run_id:
            # Not written by enqueue(): it can never run, and redelivering it forever would
            # only crash handlers, so it goes where an operator will see it.
            await self.dead_letter(delivery, f"malformed queue entry without run_id: {fields!r}")
            return None
        return delivery

    async def extend(self, consumer: str, delivery: Delivery) -> bool:
        """Reset the message's idle time; False when ``consumer`` no longer holds this delivery
        (reclaimed by another worker, or by itself as a newer delivery, or acked)."""
        kept = await self._extend(
            keys=[self.stream],
            args=[self.group, consumer, delivery.message_id, delivery.deliveries],
        )
        return bool(int(kept))

    async def ack(self, delivery: Delivery) -> None:
        # No ownership check: whoever finishes the run first acks it, and a duplicate still
        # running elsewhere then sees extend() return False.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, self.group, delivery.message_id)
            pipe.xdel(self.stream, delivery.message_id)
            await pipe.execute()

    async def dead_letter(self, delivery: Delivery, error: str) -> str:
        entry: dict[FieldT, EncodableT] = {
            "run_id": delivery.run_id,
            "error": error,
            "deliveries": str(delivery.deliveries),
            "at": datetime.now(UTC).isoformat(),
            "message_id": delivery.message_id,
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_stream, entry, maxlen=self.max_length, approximate=True)
            pipe.xack(self.stream, self.group, delivery.message_id)
            pipe.xdel(self.stream, delivery.message_id)
            dead_id, _, _ = await pipe.execute()
        return _text(dead_id)

    async def dead_letters(
        self, *, limit: int = 100, before: str | None = None
    ) -> list[DeadLetter]:
        """Newest first; pass the last ``id`` of a page as ``before`` for the next page."""
        entries: Any = await self.client.xrevrange(
            self.dead_stream, max="+" if before is None else f"({before}", min="-", count=limit
        )
        letters = []
        for entry_id, raw in entries or []:
            fields = _fields(raw)
            letters.append(
                DeadLetter(
                    id=_text(entry_id),
                    run_id=fields["run_id"],
                    error=fields["error"],
                    deliveries=int(fields["deliveries"]),
                    at=datetime.fromisoformat(fields["at"]),
                )
            )
        return letters

    async def stats(self) -> QueueStats:
        """Depth and wait of the queue, read atomically (what back-pressure is decided on)."""
        reply = await self._stats(keys=[self.stream, self.dead_stream], args=[self.group])
        length, pending, dead, seconds, micros, oldest = reply
        wait_s = 0.0
        if _text(oldest):
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            wait_s = max(0.0, (now_ms - int(_text(oldest).partition("-")[0])) / 1000)
        return QueueStats(
            length=int(length),
            pending=int(pending),
            dead=int(dead),
            waiting=max(0, int(length) - int(pending)),
            oldest_wait_s=wait_s,
        )
