"""Completed steps in Redis, shared by every replica and worker of a deployment.

Two kinds of entries, as in the engine's step cache:

* a run's own steps, in one hash per run (``<prefix>:steps:<run id>``, field = step key), which
  a worker that reclaims a dead worker's run reads to resume it: each step is written (and the
  write awaited) before the engine goes on, so a step that completed is never executed or billed
  again, whichever process takes the run over. The hash expires ``run_ttl_s`` after its last
  write; a run that succeeded deletes it.
* ``shared:`` steps of nodes that opted in with ``cache:``, one string each with the node's TTL,
  so a result computed on one replica serves all of them.

Every call may raise ``RedisUnavailable``; ``RunSteps`` falls back to the process's own caches
and the store, so an outage costs sharing, not runs.
"""

from __future__ import annotations

from typing import Final

from control_plane.store.redis import RedisLink

__all__ = ["RemoteSteps"]

_DAY: Final = 86_400.0


class RemoteSteps:
    def __init__(self, link: RedisLink, *, run_ttl_s: float = _DAY) -> None:
        self.link = link
        self.run_ttl_s = run_ttl_s

    def _run_key(self, run_id: str) -> str:
        return self.link.key("steps", run_id)

    async def load(self, run_id: str) -> dict[str, str]:
        """Every step the run completed so far (key → encoded step)."""
        raw = await self.link.call("steps.load", lambda c: c.hgetall(self._run_key(run_id)))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def save(self, run_id: str, key: str, value: str) -> None:
        name = self._run_key(run_id)
        ttl_ms = int(self.run_ttl_s * 1000)

        async def write(client: object) -> None:
            async with self.link.client.pipeline(transaction=True) as pipe:
                pipe.hset(name, key, value)
                pipe.pexpire(name, ttl_ms)
                await pipe.execute()

        await self.link.call("steps.save", write)

    async def forget(self, run_id: str) -> None:
        await self.link.call("steps.forget", lambda c: c.delete(self._run_key(run_id)))

    async def shared_get(self, key: str) -> str | None:
        raw = await self.link.call("shared.get", lambda c: c.get(self.link.key(key)))
        return None if raw is None else _text(raw)

    async def shared_put(self, key: str, value: str, ttl_s: float | None) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self.link.call("shared.put", lambda c: c.set(self.link.key(key), value, px=px))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
