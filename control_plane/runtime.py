"""One process's services, built in one order and closed in the reverse: trace export → store →
migrations → Redis → run queue → compiler → runs, then, for a server, the registry cache, its change
notifications and the experiment evaluator.

The server's lifespan (``control_plane.app``) and ``rollgraph worker`` (``control_plane.worker``)
both open a ``Runtime``; what differs between them is only what they ask for (a worker consumes
the queue on a client of its own and serves no requests, so it needs no registry cache), so a
service is never wired two ways.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from sqlalchemy import Engine as DbEngine

import engine as graph_engine
from control_plane.experiments.evaluator import Evaluator
from control_plane.metrics import Metrics
from control_plane.queue import RunQueue
from control_plane.registry.cache import RegistryCache
from control_plane.registry.notify import RegistryNotifier
from control_plane.runs.compiler import Compiler, configure_engine
from control_plane.runs.execution import Runs
from control_plane.settings import Settings
from control_plane.store.db import SessionFactory, create_db_engine, make_session_factory
from control_plane.store.migrations import upgrade_to_head
from control_plane.store.redis import RedisLink
from control_plane.store.startup import wait_for_store
from control_plane.telemetry import Tracing, open_telemetry

__all__ = ["Role", "Runtime", "open_runtime", "queue_of"]

Role = Literal["server", "worker"]
# A worker blocks on the stream for up to a second at a time: its client's socket timeout must
# be above that (the link's is short, so that a server fails fast).
_CONSUMER_SOCKET_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a process runs on. ``registry``, ``notifier`` and ``evaluator`` are a server's;
    ``redis`` and ``queue`` exist only with ``REDIS_URL``."""

    settings: Settings
    metrics: Metrics
    db: DbEngine
    session_factory: SessionFactory
    compiler: Compiler
    runs: Runs
    redis: RedisLink | None = None
    queue: RunQueue | None = None
    registry: RegistryCache | None = None
    notifier: RegistryNotifier | None = None
    evaluator: Evaluator | None = None
    tracing: Tracing | None = None  # the OpenTelemetry export, when OTEL_* turns it on


def queue_of(link: RedisLink, settings: Settings, client: aioredis.Redis | None = None) -> RunQueue:
    return RunQueue(
        client or link.client,
        prefix=settings.redis_prefix,
        visibility_timeout_s=settings.queue_visibility_timeout_s,
        max_deliveries=settings.queue_max_deliveries,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    metrics: Metrics,
    role: Role,
    run_engine: Callable[[], graph_engine.Engine] | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[Runtime]:
    """The process's services, started; closed in reverse order when the block ends.
    ``run_engine`` builds the graph engine (default: simulated and OpenAI-compatible
    providers; tests and benchmarks pass their own). ``tracing``: an export the caller owns
    (tests); by default the one the ``OTEL_*`` variables ask for, if any."""
    async with AsyncExitStack() as stack:
        if tracing is None:
            tracing = open_telemetry(settings)
            if tracing is not None:
                # Closed last: the spans of runs that end while the process stops are exported.
                stack.callback(tracing.shutdown)
        db = create_db_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            pool_timeout_s=settings.db_pool_timeout_s,
        )
        stack.callback(db.dispose)
        # One process at a time applies the migrations (store.migrations); a store that is
        # away at start is waited for, not a crash (store.startup).
        await wait_for_store(db, upgrade_to_head, within_s=settings.store_startup_wait_s)
        session_factory = make_session_factory(db)

        link = queue = None
        if settings.redis_url:
            # Steps shared across replicas and workers; async runs queued for the workers.
            link = RedisLink.from_settings(settings, metrics=metrics)
            stack.push_async_callback(link.aclose)
            client = None
            if role == "worker":
                client = aioredis.Redis.from_url(
                    settings.redis_url,
                    socket_timeout=_CONSUMER_SOCKET_TIMEOUT_S,
                    socket_connect_timeout=settings.redis_timeout_s,
                    health_check_interval=15,
                )
                stack.push_async_callback(client.aclose)
            # Workers create the consumer group (from the stream's start): a server only adds.
            queue = queue_of(link, settings, client)

        # One graph engine per process: shared provider limits and HTTP connection pools.
        compiler = Compiler(
            configure_engine((run_engine or graph_engine.Engine)(), settings), tracing=tracing
        )
        stack.push_async_callback(compiler.aclose)
        runs = Runs(
            compiler=compiler,
            session_factory=session_factory,
            settings=settings,
            metrics=metrics,
            redis=link,
            queue=queue,
        )
        # Closed before the compiler and Redis: async runs finish (or are stored interrupted)
        # and the writer drains while what they run on still exists.
        stack.push_async_callback(runs.aclose)
        await runs.start()  # fails the runs a stopped process left running

        registry = notifier = evaluator = None
        if role == "server":
            # Keys and routes read once per registry generation, not once per request.
            registry = RegistryCache(session_factory, poll_s=settings.registry_poll_s)
            stack.push_async_callback(registry.aclose)
            await registry.start()
            if link is not None:  # changes announced to every replica at once (the poll stays)
                notifier = RegistryNotifier(registry, link)
                stack.push_async_callback(notifier.aclose)
                await notifier.start()
            evaluator = Evaluator(
                session_factory, interval_s=settings.experiment_eval_s, metrics=metrics
            )
            stack.push_async_callback(evaluator.aclose)
            await evaluator.start()

        yield Runtime(
            settings=settings,
            metrics=metrics,
            db=db,
            session_factory=session_factory,
            compiler=compiler,
            runs=runs,
            redis=link,
            queue=queue,
            registry=registry,
            notifier=notifier,
            evaluator=evaluator,
            tracing=tracing,
        )
