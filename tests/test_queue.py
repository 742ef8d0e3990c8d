"""The run queue and its worker loop, against the real Redis at 127.0.0.1:6379 (or
``ROLLGRAPH_TEST_REDIS_URL``; no fakes: the semantics under test — pending lists, idle times,
delivery counts — are Redis's own).

Each test owns a random key prefix and deletes its keys afterwards. Without a server the tests
are skipped, saying why, or fail under ``CI=true``. Visibility timeouts are a few hundred ms;
tests wait for outcomes with generous deadlines and never assert how long anything took.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from control_plane.queue import Consumer, Delivery, Fatal, RunQueue
from tests.fixtures import REDIS_URL

TIMEOUT_S = 0.3  # visibility timeout in tests that wait for a reclaim
DEADLINE_S = 10.0  # how long any waiting loop may wait before the test fails

T = TypeVar("T")


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """A key prefix of this test's own (conftest's ``redis_prefix``: deleted afterwards)."""
    return redis_prefix


def with_queue(
    prefix: str,
    body: Callable[[RunQueue], Awaitable[T]],
    *,
    client_options: dict[str, Any] | None = None,
    **options: Any,
) -> T:
    """Run ``body`` with a queue (group created) on a fresh client, closed afterwards."""

    async def main() -> T:
        client = aredis.Redis.from_url(REDIS_URL, **(client_options or {}))
        try:
            queue = RunQueue(client, prefix=prefix, **options)
            await queue.ensure_group()
            return await body(queue)
        finally:
            await client.aclose()

    return asyncio.run(main())


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def receive_eventually(queue: RunQueue, consumer: str) -> Delivery:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while loop.time() < deadline:
        delivery = await queue.receive(consumer, block_ms=20)
        if delivery is not None:
            return delivery
    pytest.fail(f"{consumer} received nothing")


# The integrator picks the client: replies may be bytes or str, RESP2 or RESP3.
@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode_responses", [False, True])
def test_enqueue_receive_ack(prefix: str, decode_responses: bool, protocol: int) -> None:
    async def body(queue: RunQueue) -> None:
        message_id = await queue.enqueue("run-1")
        assert (await queue.stats()).length == 1
        delivery = await queue.receive("a", block_ms=0)
        assert delivery == Delivery(message_id=message_id, run_id="run-1", deliveries=1)
        assert (await queue.stats()).pending == 1
        await queue.ack(delivery)
        stats = await queue.stats()
        assert (stats.length, stats.pending, stats.dead) == (0, 0, 0)
        assert await queue.receive("a", block_ms=0) is None

    client_options = {"decode_responses": decode_responses, "protocol": protocol}
    with_queue(prefix, body, client_options=client_options)


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode_responses", [False, True])
def test_reclaim_extend_and_dead_letter_on_every_client_flavour(
    prefix: str, decode_responses: bool, protocol: int
) -> None:
    async def body(queue: RunQueue) -> None:
        await queue.enqueue("run-1")
        first = await queue.receive("a", block_ms=0)
        assert first is not None
        second = await receive_eventually(queue, "b")
        assert (second.run_id, second.deliveries) == ("run-1", 2)
        assert await queue.extend("b", second)
        assert not await queue.extend("a", first)
        await queue.dead_letter(second, "gave up")
        [letter] = await queue.dead_letters()
        assert (letter.run_id, letter.error, letter.deliveries) == ("run-1", "gave up", 2)

    client_options = {"decode_responses": decode_responses, "protocol": protocol}
    with_queue(prefix, body, client_options=client_options, visibility_timeout_s=TIMEOUT_S)


def test_stats_before_any_group(prefix: str) -> None:
    async def main() -> None:
        client = aredis.Redis.from_url(REDIS_URL)
        try:
            stats = await RunQueue(client, prefix=prefix).stats()
            assert (stats.length, stats.pending, stats.dead) == (0, 0, 0)
        finally:
            await client.aclose()

    asyncio.run(main())


def test_unacked_message_goes_to_another_consumer_after_the_timeout(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        message_id = await queue.enqueue("run-1")
        first = await queue.receive("a", block_ms=0)
        assert first is not None
        assert await queue.receive("b", block_ms=0) is None  # still within a's timeout
        second = await receive_eventually(queue, "b")
        assert (second.message_id, second.run_id, second.deliveries) == (message_id, "run-1", 2)
        await queue.ack(second)
        assert (await queue.stats()).pending == 0

    with_queue(prefix, body, visibility_timeout_s=1.0)


def test_extend_keeps_the_message_past_the_timeout(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        await queue.enqueue("run-1")
        held = await queue.receive("a", block_ms=0)
        assert held is not None
        # Six timeouts' worth of heartbeats, each well inside the timeout.
        for _ in range(6 * 10):
            assert await queue.extend("a", held)
            assert await queue.receive("b", block_ms=0) is None
            await asyncio.sleep(TIMEOUT_S / 10)
        # Heartbeats did not count as deliveries.
        reclaimed = await receive_eventually(queue, "b")
        assert reclaimed.deliveries == 2

    with_queue(prefix, body, visibility_timeout_s=TIMEOUT_S)


def test_extend_is_refused_once_the_message_was_reclaimed_or_acked(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        await queue.enqueue("run-1")
        first = await queue.receive("a", block_ms=0)
        assert first is not None
        second = await receive_eventually(queue, "b")
        assert not await queue.extend("a", first)
        assert await queue.extend("b", second)
        # A consumer reclaiming its own message: only the newer delivery holds it.
        third = await receive_eventually(queue, "b")
        assert third.deliveries == 3
        assert not await queue.extend("b", second)
        assert await queue.extend("b", third)
        await queue.ack(third)
        assert not await queue.extend("b", third)

    with_queue(prefix, body, visibility_timeout_s=TIMEOUT_S)


def test_a_message_deleted_from_the_stream_is_dropped_not_delivered(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        message_id = await queue.enqueue("run-1")
        assert await queue.receive("a", block_ms=0) is not None
        await queue.client.xdel(queue.stream, message_id)
        await asyncio.sleep(TIMEOUT_S * 2)
        assert await queue.receive("b", block_ms=0) is None
        assert (await queue.stats()).pending == 0

    with_queue(prefix, body, visibility_timeout_s=TIMEOUT_S)


def test_receive_recreates_a_deleted_stream(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        await queue.client.delete(queue.stream)
        assert await queue.receive("a", block_ms=0) is None
        await queue.enqueue("run-1")
        delivery = await queue.receive("a", block_ms=0)
        assert delivery is not None and delivery.run_id == "run-1"

    with_queue(prefix, body)


def test_an_entry_without_run_id_is_dead_lettered_not_delivered(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        await queue.client.xadd(queue.stream, {"something": "else"})
        assert await queue.receive("a", block_ms=0) is None
        [letter] = await queue.dead_letters()
        assert letter.run_id == "" and "without run_id" in letter.error
        stats = await queue.stats()
        assert (stats.length, stats.pending) == (0, 0)

    with_queue(prefix, body)


def test_dead_letter_removes_the_message_and_records_the_error(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        await queue.enqueue("run-1")
        delivery = await queue.receive("a", block_ms=0)
        assert delivery is not None
        dead_id = await queue.dead_letter(delivery, "bad input")
        stats = await queue.stats()
        assert (stats.length, stats.pending, stats.dead) == (0, 0, 1)
        [letter] = await queue.dead_letters()
        assert (letter.id, letter.run_id, letter.error, letter.deliveries) == (
            dead_id,
            "run-1",
            "bad input",
            1,
        )
        assert letter.at.utcoffset() == UTC.utcoffset(None)
        assert letter.at <= datetime.now(UTC)
        assert await queue.receive("b", block_ms=0) is None

    with_queue(prefix, body)


def test_dead_letters_page_newest_first(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        for i in range(5):
            await queue.enqueue(f"run-{i}")
            delivery = await queue.receive("a", block_ms=0)
            assert delivery is not None
            await queue.dead_letter(delivery, f"error {i}")
        pages: list[list[str]] = []
        before = None
        while page := await queue.dead_letters(limit=2, before=before):
            pages.append([letter.run_id for letter in page])
            before = page[-1].id
        assert pages == [["run-4", "run-3"], ["run-2", "run-1"], ["run-0"]]

    with_queue(prefix, body)


def start(worker: Consumer) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(worker.run(stop))


def test_worker_runs_messages_concurrently_and_acks_them(prefix: str) -> None:
    done: list[str] = []
    running = 0
    most = 0

    async def handle(delivery: Delivery) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        done.append(delivery.run_id)

    async def body(queue: RunQueue) -> None:
        for i in range(20):
            await queue.enqueue(f"run-{i}")
        stop, task = start(Consumer(queue, handle, consumer="w", concurrency=4, block_ms=20))
        await until(lambda: len(done) == 20, "20 runs")
        stop.set()
        await task
        stats = await queue.stats()
        assert (stats.length, stats.pending) == (0, 0)

    with_queue(prefix, body)
    assert sorted(done) == sorted(f"run-{i}" for i in range(20))
    assert 1 < most <= 4


def test_a_failed_run_is_redelivered_until_it_succeeds(prefix: str) -> None:
    succeeded: list[Delivery] = []

    async def handle(delivery: Delivery) -> None:
        if delivery.deliveries == 1:
            raise RuntimeError("transient")
        succeeded.append(delivery)

    async def body(queue: RunQueue) -> None:
        await queue.enqueue("run-1")
        stops, tasks = zip(
            *(start(Consumer(queue, handle, consumer=c, block_ms=20)) for c in ("a", "b")),
            strict=True,
        )
        await until(lambda: bool(succeeded), "the retry to succeed")
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        assert (await queue.stats()).pending == 0

    with_queue(prefix, body, visibility_timeout_s=TIMEOUT_S)
    [delivery] = succeeded
    assert (delivery.run_id, delivery.deliveries) == ("run-1", 2)


def test_heartbeat_keeps_a_slow_run_on_its_worker(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        started, done = asyncio.Event(), asyncio.Event()

        async def handle(delivery: Delivery) -> None:
            started.set()
            await asyncio.sleep(TIMEOUT_S * 4)
            done.set()

        await queue.enqueue("run-1")
        stop, task = start(Consumer(queue, handle, consumer="slow", block_ms=20))
        await asyncio.wait_for(started.wait(), DEADLINE_S)
        while not done.is_set():
            assert await queue.receive("other", block_ms=20) is None
        stop.set()
        await task
        stats = await queue.stats()
        assert (stats.length, stats.pending) == (0, 0)

    with_queue(prefix, body, visibility_timeout_s=TIMEOUT_S)


def test_a_stopped_worker_leaves_its_run_to_another_worker(prefix: str) -> None:
    async def body(queue: RunQueue) -> None:
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def hang(delivery: Delivery) -> None:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        await queue.enqueue("run-1")
        stop, task = start(Consumer(queue, hang, consumer="a", stop_grace_s=0.05, block_ms=20))
        await asyncio.wait_for(started.wait(), DEADLINE_S)
        stop.set()
        await task
        assert cancelled.is_set()
        assert (await queue.stats()).pending == 1

        finished: list[Delivery] = []

        async def handle(delivery: Delivery) -> None:
            finished.append(delivery)

        stop, task = start(Consumer(queue, handle, consumer="b", block_ms=20))
        await until(lambda: bool(finished), "worker b to take over the run")
        stop.set()
        await task
        assert finished[0].deliveries == 2

    with_queue(prefix, body, visibility_timeout_s=TIMEOUT_S)


def test_too_many_deliveries_dead_letter_without_running(prefix: str) -> None:
    handled: list[Delivery] = []
    dead: list[tuple[Delivery, str]] = []

    async def handle(delivery: Delivery) -> None:
        handled.append(delivery)

    async def on_dead(delivery: Delivery, error: str) -> None:
        dead.append((delivery, error))

    async def body(queue: RunQueue) -> None:
        await queue.enqueue("run-1")
        assert await queue.receive("crashed", block_ms=0) is not None  # and never acked
        stop, task = start(Consumer(queue, handle, consumer="w", on_dead=on_dead, block_ms=20))
        await until(lambda: bool(dead), "on_dead")
        stop.set()
        await task
        [letter] = await queue.dead_letters()
        assert (letter.run_id, letter.deliveries, letter.error) == ("run-1", 2, dead[0][1])
        assert (await queue.stats()).pending == 0

    with_queue(prefix, body, visibility_timeout_s=TIMEOUT_S, max_deliveries=1)
    assert handled == []
    [(delivery, error)] = dead
    assert delivery.deliveries == 2
    assert "delivered 2 times without finishing" in error


def test_fatal_dead_letters_the_run(prefix: str) -> None:
    dead: list[tuple[Delivery, str]] = []

    async def handle(delivery: Delivery) -> None:
        raise Fatal("unknown workflow version")

    async def on_dead(delivery: Delivery, error: str) -> None:
        dead.append((delivery, error))

    async def body(queue: RunQueue) -> None:
        await queue.enqueue("run-1")
        stop, task = start(Consumer(queue, handle, consumer="w", on_dead=on_dead, block_ms=20))
        await until(lambda: bool(dead), "on_dead")
        stop.set()
        await task
        [letter] = await queue.dead_letters()
        assert (letter.run_id, letter.error, letter.deliveries) == (
            "run-1",
            "unknown workflow version",
            1,
        )
        stats = await queue.stats()
        assert (stats.length, stats.pending, stats.dead) == (0, 0, 1)

    with_queue(prefix, body)
    assert [(d.run_id, e) for d, e in dead] == [("run-1", "unknown workflow version")]


def test_worker_rides_out_an_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the socket is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def never(delivery: Delivery) -> None:
        raise AssertionError("nothing can be delivered")

    async def main() -> None:
        # No client-side retries, so that the worker's own retry loop is what is exercised.
        client = aredis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        try:
            worker = Consumer(RunQueue(client, prefix="unreachable"), never, consumer="w")
            stop, task = start(worker)
            await until(
                lambda: any("Redis unavailable" in r.getMessage() for r in caplog.records),
                "the outage warning",
            )
            await asyncio.sleep(0.5)  # several failed retries
            assert not task.done()
            stop.set()
            await asyncio.wait_for(task, DEADLINE_S)
        finally:
            await client.aclose()

    with caplog.at_level(logging.DEBUG, logger="control_plane.queue"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage, not once per retry
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) >= 1
