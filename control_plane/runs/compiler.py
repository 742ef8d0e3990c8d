"""The process's engine and its compiled workflows.

One ``engine.Engine`` per process (created in the app's lifespan, closed on shutdown) so that
provider concurrency limits and HTTP connection pools are shared by every request. Compiling a
definition costs far more than routing, so compiled workflows are kept per (digest, version):
versions are immutable, so an entry never goes stale.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import engine
from control_plane.errors import Conflict
from control_plane.settings import Settings, provider_limits, split_list
from control_plane.telemetry import Tracing
from engine.providers import default_providers
from engine.providers.sim import SimProvider

__all__ = [
    "SERVER_HTTP_ADVICE",
    "Compiler",
    "configure_engine",
    "engine_limits",
    "engine_settings_problem",
]


def engine_limits(settings: Settings) -> engine.Limits:
    """The engine's bounds on work, from the process's settings."""
    return engine.Limits(
        max_nodes=settings.max_nodes,
        max_edges=settings.max_edges,
        max_map_items=settings.max_map_items,
        max_template_bytes=settings.max_template_bytes,
        max_response_bytes=settings.max_response_bytes,
    )


# What a refused http.json call tells the operator of a server: the settings, on every process
# that runs workflows (a worker runs queued runs with its own).
SERVER_HTTP_ADVICE = engine.HttpAdvice(
    hosts="ROLLGRAPH_HTTP_ALLOW_HOSTS=HOST:PORT on the server and its workers",
    networks="ROLLGRAPH_HTTP_ALLOW_NETWORKS=CIDR on the server and its workers",
)


def engine_settings_problem(settings: Settings) -> str | None:
    """One line when the settings name a provider the default engine lacks (checked by
    ``rollgraph serve`` and ``rollgraph worker`` before they start, so it is not a traceback)."""
    known = {p.name for p in default_providers()}
    unknown = sorted(set(provider_limits(settings.provider_concurrency)) - known)
    if not unknown:
        return None
    return (
        f"ROLLGRAPH_PROVIDER_CONCURRENCY names provider {unknown[0]!r}; known: "
        f"{', '.join(sorted(known))}"
    )


def configure_engine(run_engine: engine.Engine, settings: Settings) -> engine.Engine:
    """``run_engine`` with the settings' limits, http allow-list, provider concurrency and
    simulator time scale, whoever built it (the default factory, a test's, a benchmark's): a
    server's bounds never depend on that. ``ValueError`` for a provider the engine lacks."""
    try:
        run_engine.configure(
            limits=engine_limits(settings),
            http_allow_hosts=split_list(settings.http_allow_hosts),
            http_allow_networks=split_list(settings.http_allow_networks),
            http_advice=SERVER_HTTP_ADVICE,
            concurrency=provider_limits(settings.provider_concurrency),
        )
    except ValueError as exc:
        raise ValueError(f"ROLLGRAPH_PROVIDER_CONCURRENCY: {exc}") from None
    if settings.sim_time_scale is not None:
        for provider in run_engine.providers:
            if isinstance(provider, SimProvider):
                provider.time_scale = settings.sim_time_scale
    return run_engine


class Compiler:
    def __init__(
        self, run_engine: engine.Engine, *, max_compiled: int = 256, tracing: Tracing | None = None
    ) -> None:
        self.engine = run_engine
        # With an OpenTelemetry export, every run is recorded as spans (control_plane.telemetry).
        self.tracing = tracing
        run_engine.observe(tracing.observer if tracing is not None else None)
        self._compiled: OrderedDict[tuple[str, str], engine.Workflow] = OrderedDict()
        self._max = max_compiled
        self._lock = threading.Lock()  # compiled from the event loop and from worker threads

    def workflow(self, *, version: str, digest: str, definition: str) -> engine.Workflow:
        """The compiled workflow of a stored version (``definition`` is its normalised JSON)."""
        key = (digest, version)
        with self._lock:
            hit = self._compiled.get(key)
            if hit is not None:
                self._compiled.move_to_end(key)
                return hit
        data = json.loads(definition)
        # The stored definition leaves the version label out (it is not part of the digest);
        # put it back so the trace names the version that actually ran.
        data["version"] = version
        try:
            compiled = self.engine.define(data)
        except (engine.DefinitionError, engine.ValidationError) as exc:
            # It compiled when it was stored; a node kind or provider has gone since.
            raise Conflict(
                f"version {version} ({digest}) no longer compiles on this server: {exc}"
            ) from exc
        with self._lock:
            self._compiled[key] = compiled
            while len(self._compiled) > self._max:
                self._compiled.popitem(last=False)
        return compiled

    async def run(
        self, workflow: engine.Workflow, inputs: Mapping[str, Any], **kw: Any
    ) -> engine.RunResult:
        """``engine.run``, traced when the process exports traces."""
        if self.tracing is None:
            return await self.engine.run(workflow, inputs, **kw)
        return await self.tracing.traced_run(self.engine.run, workflow, inputs, **kw)

    async def aclose(self) -> None:
        await self.engine.aclose()
