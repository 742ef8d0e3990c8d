"""Registry changes announced over Redis, so every replica reads them at once.

Without Redis each process polls the registry's generation (``ROLLGRAPH_REGISTRY_POLL_S``).
With Redis, a process that commits an audited change (a label move, a rollback, a rollout, an
experiment action) publishes the new generation on ``<prefix>:registry``; every process
subscribes, and on a message reads the generation from the store (the versioned read: the
message only says "look now", the store says what is true), which drops the cached routes and
keys read before it. The poller keeps running as the fallback for a lost message or a Redis
outage, so a notification can only make a change arrive sooner, never be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from control_plane.registry.cache import RegistryCache
from control_plane.store.redis import RedisLink, RedisUnavailable

__all__ = ["RegistryNotifier"]

log = logging.getLogger(__name__)

_RESUBSCRIBE_S = 1.0


class RegistryNotifier:
    def __init__(self, cache: RegistryCache, link: RedisLink) -> None:
        self.cache = cache
        self.link = link
        self.channel = link.key("registry")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.cache.on_commit(self._committed)
        self._task = asyncio.create_task(self._listen(), name="registry-notifications")

    def _committed(self, generation: int) -> None:
        loop = self._loop
        if self._task is None or loop is None or loop.is_closed():
            return  # stopped: the other processes' pollers will see the change
        # Commits happen in worker threads: hand the publish to the event loop.
        loop.call_soon_threadsafe(self._spawn_publish, generation)

    def _spawn_publish(self, generation: int) -> None:
        task = asyncio.create_task(self._publish(generation))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, generation: int) -> None:
        # Unavailable: the other processes' pollers will see the change instead.
        with contextlib.suppress(RedisUnavailable):
            await self.link.call(
                "registry.publish", lambda c: c.publish(self.channel, str(generation))
            )

    async def _listen(self) -> None:
        # A client of its own: the link's socket timeout (fail fast) would end an idle
        # subscription every half second.
        client = aioredis.Redis.from_url(
            self.link.url, socket_connect_timeout=self.link.timeout_s, health_check_interval=15
        )
        try:
            await self._subscribe(client)
        finally:
            await client.aclose()

    async def _subscribe(self, client: aioredis.Redis) -> None:
        while True:
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self.cache.poll()  # the versioned read
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.debug("registry notifications interrupted (%r); resubscribing", exc)
                await asyncio.sleep(_RESUBSCRIBE_S)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pending in list(self._publishing):
            pending.cancel()
