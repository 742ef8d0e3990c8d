"""``rollgraph worker``: a process that runs queued async runs from the Redis run queue.

API replicas started with ``REDIS_URL`` store an async run ``queued`` and put it on the queue;
any number of workers (on any machines, against the same store and Redis) take runs from it as
one consumer group. Delivery is at least once: a worker that dies stops acknowledging, and after
``ROLLGRAPH_QUEUE_VISIBILITY_TIMEOUT_S`` another worker takes the run over and goes on from the
steps the first one completed (they are in Redis), so nothing completed is run or billed twice.
A run that fails for good, or whose deliveries run out, lands in the dead-letter stream with its
error (``GET /v1/queue/dead-letters``) and stays resumable.

SIGTERM or SIGINT stops taking runs; runs in flight get ``shutdown_grace_s`` to end, the rest
stay ``running`` and are taken over by another worker.

Metrics: with ``PROMETHEUS_MULTIPROC_DIR`` shared with a server on the same machine, that
server's ``/metrics`` includes the worker's counters; else ``--metrics-port`` serves them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable

import redis.asyncio as aioredis
from prometheus_client import start_http_server

import engine as graph_engine
from control_plane.metrics import Metrics
from control_plane.queue import Consumer, RunQueue
from control_plane.runs.compiler import Compiler
from control_plane.runs.execution import Runs
from control_plane.settings import Settings, get_settings
from control_plane.store.db import create_db_engine, make_session_factory
from control_plane.store.migrations import upgrade_to_head
from control_plane.store.redis import RedisLink

__all__ = ["default_consumer", "run_worker"]

log = logging.getLogger(__name__)

_CONSUMER_SOCKET_TIMEOUT_S = 10.0  # above the Consumer's 1 s blocking read


def default_consumer() -> str:
    """Unique per process and readable in ``XINFO CONSUMERS``: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def queue_of(link: RedisLink, settings: Settings, client: aioredis.Redis | None = None) -> RunQueue:
    return RunQueue(
        client or link.client,
        prefix=settings.redis_prefix,
        visibility_timeout_s=settings.queue_visibility_timeout_s,
        max_deliveries=settings.queue_max_deliveries,
    )


async def run_worker(
    settings: Settings,
    *,
    consumer: str | None = None,
    concurrency: int | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    stop: asyncio.Event | None = None,
    run_engine: Callable[[], graph_engine.Engine] | None = None,
) -> int:
    """Consume the run queue until ``stop`` is set (or SIGTERM/SIGINT); the exit status.
    ``run_engine`` builds the process's graph engine (default: simulated and OpenAI-compatible
    providers; benchmarks pass one with their own node kinds)."""
    if not settings.redis_url:
        print(
            "rollgraph worker: set REDIS_URL (e.g. redis://127.0.0.1:6379/0): workers take "
            "queued runs from Redis; without it, async runs run inside the server",
            file=sys.stderr,
        )
        return 2
    db = create_db_engine(settings.database_url)
    upgrade_to_head(db)
    metrics = Metrics()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
    link = RedisLink.from_settings(settings, metrics=metrics)
    # The consumer blocks on the stream for up to a second at a time: a client of its own with a
    # socket timeout above that (the link's is short, to fail fast for servers).
    consumer_client = aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=_CONSUMER_SOCKET_TIMEOUT_S,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=15,
    )
    queue = queue_of(link, settings, consumer_client)
    runner = Compiler((run_engine or graph_engine.Engine)())
    runs = Runs(
        runner=runner,
        session_factory=make_session_factory(db),
        settings=settings,
        metrics=metrics,
        redis=link,
        queue=queue,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    name = consumer or default_consumer()
    worker = Consumer(
        queue,
        runs.execute_queued,
        consumer=name,
        concurrency=concurrency or settings.worker_concurrency,
        on_dead=runs.dead_lettered,
        stop_grace_s=settings.shutdown_grace_s,
    )
    await runs.start()
    log.warning("worker %s takes runs from %s", name, queue.stream)
    try:
        await worker.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runs.aclose()
        await runner.aclose()
        await link.aclose()
        await consumer_client.aclose()
        db.dispose()
    return 0


def main(
    consumer: str | None,
    concurrency: int | None,
    metrics_port: int | None,
    metrics_host: str = "127.0.0.1",
) -> int:  # pragma: no cover - the CLI's entry
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = get_settings()
    except ValueError as exc:
        print(f"rollgraph worker: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(
        run_worker(
            settings,
            consumer=consumer,
            concurrency=concurrency,
            metrics_port=metrics_port,
            metrics_host=metrics_host,
        )
    )
