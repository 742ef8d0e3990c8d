"""The FastAPI application: settings, store (migrated on start), routes, errors, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

import engine as graph_engine
from control_plane.access.routes import router as keys_router
from control_plane.api.errors import error_body, install_error_handlers
from control_plane.api.middleware import BodySizeLimit
from control_plane.audit.routes import router as audit_router
from control_plane.experiments.evaluator import Evaluator
from control_plane.experiments.gauges import StoreCollector
from control_plane.experiments.routes import router as experiments_router
from control_plane.metrics import Metrics
from control_plane.metrics.http import HttpMetrics
from control_plane.metrics.routes import router as metrics_router
from control_plane.outcomes.routes import router as outcomes_router
from control_plane.queue.routes import router as queue_router
from control_plane.registry.cache import RegistryCache
from control_plane.registry.notify import RegistryNotifier
from control_plane.rollouts.routes import router as rollouts_router
from control_plane.runs.compiler import Compiler
from control_plane.runs.execution import Runs
from control_plane.runs.routes import router as runs_router
from control_plane.settings import Settings, get_settings
from control_plane.store.db import create_db_engine, make_session_factory
from control_plane.store.migrations import upgrade_to_head
from control_plane.store.redis import RedisLink
from control_plane.worker import queue_of
from control_plane.workflows.routes import router as workflows_router

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    run_engine: Callable[[], graph_engine.Engine] | None = None,
) -> FastAPI:
    """The app. ``run_engine`` builds the process's graph engine (default: simulated and
    OpenAI-compatible providers); tests pass one whose simulator does not sleep."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_db_engine(settings.database_url)
        upgrade_to_head(engine)  # schema migrations are applied on start
        app.state.db_engine = engine
        app.state.session_factory = make_session_factory(engine)
        # One graph engine per process: shared provider limits and HTTP connection pools.
        app.state.compiler = Compiler((run_engine or graph_engine.Engine)())
        # With Redis: steps shared across replicas, async runs queued for `rollgraph worker`.
        link = queue = None
        if settings.redis_url:
            link = RedisLink.from_settings(settings, metrics=metrics)
            # Workers create the consumer group (from the stream's start): the server only adds.
            queue = queue_of(link, settings)
        app.state.redis = link
        app.state.queue = queue
        runs = Runs(
            runner=app.state.compiler,
            session_factory=app.state.session_factory,
            settings=settings,
            metrics=metrics,
            redis=link,
            queue=queue,
        )
        app.state.runs = runs
        await runs.start()  # fails the runs a stopped process left running
        # Keys and routes read once per registry generation, not once per request.
        cache = RegistryCache(app.state.session_factory, poll_s=settings.registry_poll_s)
        app.state.registry_cache = cache
        await cache.start()
        notifier = None
        if link is not None:  # changes announced to every replica at once (the poll stays)
            notifier = RegistryNotifier(cache, link)
            await notifier.start()
        app.state.registry_notifier = notifier
        evaluator = Evaluator(
            app.state.session_factory, interval_s=settings.experiment_eval_s, metrics=metrics
        )
        app.state.evaluator = evaluator
        await evaluator.start()
        try:
            yield
        finally:
            await evaluator.aclose()
            await runs.aclose()  # async runs finish or are stored interrupted; writes drain
            if notifier is not None:
                await notifier.aclose()
            await cache.aclose()
            await app.state.compiler.aclose()
            if link is not None:
                await link.aclose()
            engine.dispose()

    app = FastAPI(
        title="rollgraph",
        version="0.1.0",
        summary="Experimentation and rollout control plane for AI pipelines.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # One per app (one per process in production): counters start at zero with the app.
    metrics = Metrics()
    metrics.add_collector(StoreCollector(lambda: getattr(app.state, "session_factory", None)))
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: it also counts the requests BodySizeLimit refuses.
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.include_router(workflows_router)
    app.include_router(rollouts_router)
    app.include_router(runs_router)
    app.include_router(outcomes_router)
    app.include_router(experiments_router)
    app.include_router(queue_router)
    # Every route above needs an API key; health probes and the OpenAPI document do not.
    app.include_router(keys_router)
    app.include_router(audit_router)
    app.include_router(metrics_router)  # no key, like the health probes: scrapers have none

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "store unreachable"}})
    def readyz() -> Any:
        """The process can serve: the store answers."""
        try:
            with app.state.db_engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready", never a 500
            body = error_body("not_ready", f"store unreachable: {type(exc).__name__}")
            return JSONResponse(body, status_code=503)
        return {"status": "ready"}

    return app
