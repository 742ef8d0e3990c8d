"""The FastAPI application: every resource's routes, error rendering, limits and health probes;
the process's services come from ``runtime.open_runtime`` for as long as the app lives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

import engine as graph_engine
from control_plane.access.failures import FailedKeys
from control_plane.access.routes import router as keys_router
from control_plane.api.errors import error_body, install_error_handlers
from control_plane.api.middleware import BodySizeLimit, SecurityHeaders
from control_plane.audit.routes import router as audit_router
from control_plane.experiments.gauges import StoreCollector
from control_plane.experiments.routes import router as experiments_router
from control_plane.metrics import Metrics
from control_plane.metrics.http import HttpMetrics
from control_plane.metrics.routes import router as metrics_router
from control_plane.outcomes.routes import router as outcomes_router
from control_plane.queue.routes import router as queue_router
from control_plane.rollouts.routes import router as rollouts_router
from control_plane.runs.event_routes import router as run_events_router
from control_plane.runs.routes import router as runs_router
from control_plane.runs.shadow.routes import router as shadow_router
from control_plane.runs.stream import RunStreams
from control_plane.runtime import open_runtime
from control_plane.settings import Settings, get_settings
from control_plane.store.db import size_threads
from control_plane.telemetry import Tracing, export_requested, trace_context_middleware
from control_plane.web import console_router, docs_router
from control_plane.workflows.routes import router as workflows_router

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    run_engine: Callable[[], graph_engine.Engine] | None = None,
    tracing: Tracing | None = None,
) -> FastAPI:
    """The app. ``run_engine`` builds the process's graph engine (default: simulated and
    OpenAI-compatible providers); tests pass one whose simulator does not sleep. ``tracing``:
    an OpenTelemetry export of the caller's (tests); by default ``OTEL_*`` decide."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings, metrics=metrics, role="server", run_engine=run_engine, tracing=tracing
        ) as runtime:
            # What the dependency aliases read (``api.deps``, ``runs.deps``, ...).
            state = app.state
            state.runtime = runtime
            state.db_engine = runtime.db
            state.session_factory = runtime.session_factory
            state.compiler = runtime.compiler
            state.tracing = runtime.compiler.tracing  # the request spans' (telemetry.middleware)
            state.engine = runtime.compiler.engine
            state.runs = runtime.runs
            state.run_streams = streams = RunStreams(
                units=runtime.runs.units, signals=runtime.runs.signals, settings=settings
            )
            # Every admitted unit of work can hold its connection at once.
            size_threads(settings.db_admission_limit)
            state.redis = runtime.redis
            state.queue = runtime.queue
            state.registry_cache = runtime.registry
            state.registry_notifier = runtime.notifier
            state.evaluator = runtime.evaluator
            # A stop signal ends the run-event streams first: uvicorn waits for open responses.
            undo = streams.drain_on_exit_signals()
            try:
                yield
            finally:
                undo()

    app = FastAPI(
        title="rollgraph",
        version="0.1.0",
        summary="Experimentation and rollout control plane for AI pipelines.",
        lifespan=lifespan,
        # Served by control_plane.web from local assets instead of FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    # One per app (one per process in production): counters start at zero with the app.
    metrics = Metrics()
    metrics.add_collector(StoreCollector(lambda: getattr(app.state, "session_factory", None)))
    app.state.metrics = metrics
    # Unknown keys and failures per client, in this process.
    app.state.failed_keys = FailedKeys(failures_per_s=settings.key_failures_per_s)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so outermost: it also counts the requests BodySizeLimit refuses.
    app.add_middleware(HttpMetrics, metrics=metrics)
    # Outermost of all: every answer, the 413s and the 500s of the layers inside included.
    app.add_middleware(SecurityHeaders)
    # With an export, the caller's trace context is current for the request (runs join it).
    trace_context = trace_context_middleware() if tracing or export_requested() else None
    if trace_context is not None:
        # The export opens with the runtime (in the lifespan): read it per request.
        app.add_middleware(trace_context, tracing=lambda: getattr(app.state, "tracing", None))
    app.include_router(workflows_router)
    app.include_router(rollouts_router)
    app.include_router(runs_router)
    app.include_router(run_events_router)
    app.include_router(shadow_router)
    app.include_router(outcomes_router)
    app.include_router(experiments_router)
    app.include_router(queue_router)
    # Every route above needs an API key; health probes and the OpenAPI document do not.
    app.include_router(keys_router)
    app.include_router(audit_router)
    app.include_router(metrics_router)  # no key, like the health probes: scrapers have none
    # Pages and static files, no key: the console signs in with a key it sends to the API.
    app.include_router(docs_router)
    app.include_router(console_router)

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
