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

from prometheus_client import start_http_server
from pydantic import ValidationError

import engine as graph_engine
from control_plane.metrics import Metrics
from control_plane.queue import Consumer
from control_plane.runs.compiler import engine_settings_problem
from control_plane.runtime import open_runtime
from control_plane.settings import Settings, get_settings, settings_problem

__all__ = ["default_consumer", "main", "run_worker"]

log = logging.getLogger(__name__)


def default_consumer() -> str:
    """Unique per process and readable in ``XINFO CONSUMERS``: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


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
    metrics = Metrics()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    name = consumer or default_consumer()
    async with open_runtime(
        settings, metrics=metrics, role="worker", run_engine=run_engine
    ) as runtime:
        queued = runtime.runs.queued
        assert queued is not None  # REDIS_URL is set, so runs go through the queue
        queue = queued.queue
        consumer_loop = Consumer(
            queue,
            queued.execute,
            consumer=name,
            concurrency=concurrency or settings.worker_concurrency,
            on_dead=queued.dead_lettered,
            stop_grace_s=settings.shutdown_grace_s,
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.warning("worker %s takes runs from %s", name, queue.stream)
        try:
            await consumer_loop.run(stop)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
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
    except ValidationError as exc:
        print(f"rollgraph worker: {settings_problem(exc)}", file=sys.stderr)
        return 2
    problem = engine_settings_problem(settings)
    if problem is not None:
        print(f"rollgraph worker: {problem}", file=sys.stderr)
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
