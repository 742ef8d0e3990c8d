"""The Redis link's breaker opens on an outage, not on one answer read late.

On a process short of CPU the event loop can lag past the link's timeout while Redis answers in
microseconds; before, that one late read opened the breaker and refused every async submission
for a second (23 × 503 ``redis_unavailable`` in a 10-minute soak on two busy cores). Now a
timeout fails its own call only, ``trip_after`` timeouts in a row open the breaker, and a
refused connection opens it at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from control_plane.store.redis import RedisLink, RedisUnavailable
from tests.fixtures import REDIS_URL
from tests.processes import free_port


async def _late(client: aioredis.Redis) -> Any:
    await asyncio.sleep(0.5)  # longer than the link's timeout: the answer is read too late
    return await client.ping()


def test_one_late_answer_fails_its_call_only(redis_prefix: str) -> None:
    async def scenario() -> None:
        link = RedisLink(REDIS_URL, prefix=redis_prefix, timeout_s=0.05, retry_s=30.0)
        try:
            with pytest.raises(RedisUnavailable):
                await link.call("probe.late", _late)
            assert link.up
            assert await link.call("probe.ping", lambda c: c.ping()) is True
            # a success forgets the strike: one more late answer still leaves it closed
            with pytest.raises(RedisUnavailable):
                await link.call("probe.late", _late)
            assert link.up
        finally:
            await link.aclose()

    asyncio.run(scenario())


def test_timeouts_in_a_row_open_the_breaker(redis_prefix: str) -> None:
    async def scenario() -> None:
        link = RedisLink(REDIS_URL, prefix=redis_prefix, timeout_s=0.05, retry_s=30.0)
        try:
            for _ in range(2):
                with pytest.raises(RedisUnavailable):
                    await link.call("probe.late", _late)
            assert not link.up
            with pytest.raises(RedisUnavailable):  # fails fast, without asking Redis
                await link.call("probe.ping", lambda c: c.ping())
        finally:
            await link.aclose()

    asyncio.run(scenario())


def test_a_refused_connection_opens_it_at_once() -> None:
    async def scenario() -> None:
        link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5, retry_s=30.0)
        try:
            with pytest.raises(RedisUnavailable):
                await link.call("probe.ping", lambda c: c.ping())
            assert not link.up
        finally:
            await link.aclose()

    asyncio.run(scenario())
