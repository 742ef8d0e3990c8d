"""``RegistryNotifier``: registry changes announced over Redis pub/sub, on SQLite and PostgreSQL
and the real Redis.

Each "process" here is what a server builds: its own database engine and session factory, a
``RegistryCache`` on it and a ``RegistryNotifier`` with a ``RedisLink`` of its own, all in one
event loop. Caches that must learn of a change only through Redis poll the generation once an
hour, so nothing but a notification can tell them in time. What the module promises:

* a change committed by one process reaches the others' caches at once, and what they then
  believe is the store's generation (a message only says "look now");
* without Redis nothing fails: the change is committed, the poller delivers it, and once Redis is
  back the notifiers subscribe again and notifications flow (a Redis of the test's own, stopped
  and started).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from control_plane.access import service as access
from control_plane.registry.cache import RegistryCache
from control_plane.registry.notify import RegistryNotifier
from control_plane.store.db import (
    SessionFactory,
    create_db_engine,
    make_session_factory,
    session_scope,
)
from control_plane.store.generation import read_generation
from control_plane.store.redis import RedisLink
from tests.fixtures import REDIS_URL
from tests.processes import own_redis

HOUR_S = 3600.0  # a poller that never polls again during a test
FAST_POLL_S = 0.1
DEADLINE_S = 15.0  # generous: only a broken notifier or poller takes this long


@dataclass
class Process:
    factory: SessionFactory
    cache: RegistryCache
    notifier: RegistryNotifier


@asynccontextmanager
async def process(
    database_url: str, redis_url: str, prefix: str, *, poll_s: float
) -> AsyncIterator[Process]:
    """A process's registry cache and notifier, started, and stopped afterwards."""
    async with AsyncExitStack() as stack:
        db = create_db_engine(database_url)
        stack.callback(db.dispose)
        factory = make_session_factory(db)
        cache = RegistryCache(factory, poll_s=poll_s)
        link = RedisLink(redis_url, prefix=prefix, timeout_s=0.5, retry_s=0.2)
        stack.push_async_callback(link.aclose)
        notifier = RegistryNotifier(cache, link)
        await cache.start()
        stack.push_async_callback(cache.aclose)
        await notifier.start()
        stack.push_async_callback(notifier.aclose)
        stack.push_async_callback(settled, db)  # first, before the notifier stops
        yield Process(factory, cache, notifier)


async def settled(db: Engine) -> None:
    """Until no store read is in flight for a while. ``RegistryNotifier.aclose`` cancels the
    read a message started and abandons its thread, whose connection then goes back to a pool
    already disposed (and is reported as leaked when collected); the tests let it finish."""
    pool = db.pool
    assert isinstance(pool, QueuePool)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    quiet = 0
    while quiet < 5 and loop.time() < deadline:
        quiet = quiet + 1 if pool.checkedout() == 0 else 0
        await asyncio.sleep(0.02)


async def until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def until_subscribed(link: RedisLink, channel: str, count: int) -> None:
    """Until ``count`` clients listen on ``channel`` (a message sent before is lost)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        try:
            [(_, listening)] = await link.client.pubsub_numsub(channel)
        except Exception:  # the server is still starting, or this link's connection was cut
            listening = -1
        if listening == count:
            return
        if loop.time() > deadline:
            pytest.fail(f"{listening} subscribers on {channel}, not {count}")
        await asyncio.sleep(0.05)


async def change(factory: SessionFactory, name: str) -> int:
    """An audited change (a new API key) committed in a worker thread, as a request commits;
    the generation it made."""

    def commit() -> int:
        with session_scope(factory) as session:
            access.create_key(session, name=name, role="viewer", actor="test")
        with session_scope(factory) as session:
            return read_generation(session)

    return await asyncio.to_thread(commit)


def test_a_change_committed_in_one_process_reaches_another_before_its_poller_would(
    database_url: str, db_engine: Engine, redis_prefix: str
) -> None:
    async def main() -> None:
        async with (
            process(database_url, REDIS_URL, redis_prefix, poll_s=HOUR_S) as one,
            process(database_url, REDIS_URL, redis_prefix, poll_s=HOUR_S) as two,
        ):
            await until_subscribed(one.notifier.link, one.notifier.channel, 2)
            before = two.cache.generation
            two.cache.put("route", "v1", generation=before)
            assert two.cache.get("route", str) == "v1"

            made = await change(one.factory, "k1")
            assert made > before
            await until(lambda: two.cache.generation == made, "the change to reach process two")
            assert two.cache.get("route", str) is None  # read before the change: dropped
            # And the other way round.
            made = await change(two.factory, "k2")
            await until(lambda: one.cache.generation == made, "the change to reach process one")

    asyncio.run(main())


def test_a_message_only_makes_a_process_read_the_generation_from_the_store(
    database_url: str, db_engine: Engine, redis_prefix: str
) -> None:
    async def main() -> None:
        async with (
            process(database_url, REDIS_URL, redis_prefix, poll_s=HOUR_S) as one,
            process(database_url, REDIS_URL, redis_prefix, poll_s=HOUR_S) as two,
        ):
            link = two.notifier.link
            await until_subscribed(link, two.notifier.channel, 2)
            # A message claiming a generation the store never reached, then a real change.
            await link.client.publish(two.notifier.channel, "999999")
            made = await change(one.factory, "k1")
            await until(lambda: two.cache.generation >= made, "the change to reach process two")
            assert two.cache.generation == made  # the store's word, not the message's

    asyncio.run(main())


@pytest.mark.slow
def test_without_redis_changes_arrive_by_polling_and_notifications_resume_when_it_is_back(
    database_url: str, db_engine: Engine, tmp_path: Path
) -> None:
    with own_redis(tmp_path) as (redis_url, stop_redis, start_redis):

        async def main() -> None:
            async with (
                process(database_url, redis_url, "rgtest", poll_s=HOUR_S) as writer,
                process(database_url, redis_url, "rgtest", poll_s=FAST_POLL_S) as polled,
                process(database_url, redis_url, "rgtest", poll_s=HOUR_S) as notified,
            ):
                link, channel = writer.notifier.link, writer.notifier.channel
                await until_subscribed(link, channel, 3)

                await asyncio.to_thread(stop_redis)
                # The change commits although it cannot be announced; the poller delivers it.
                made = await change(writer.factory, "during-the-outage")
                await until(lambda: polled.cache.generation == made, "the poller to see it")
                assert notified.cache.generation < made  # it polls once an hour: not yet

                await asyncio.to_thread(start_redis)
                await until_subscribed(link, channel, 3)  # every notifier listens again
                made = await change(writer.factory, "after-the-outage")
                await until(lambda: notified.cache.generation == made, "the notification")
                await until(lambda: polled.cache.generation == made, "the poller or it")

        asyncio.run(main())
