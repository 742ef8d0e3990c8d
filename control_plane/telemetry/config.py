"""Whether this process exports traces, decided from the standard ``OTEL_*`` variables, and the
one call that builds the export (``open_telemetry``).

Export is on when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``; ``none``
is off), or, without it, when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). ``OTEL_SDK_DISABLED=true`` turns it off whatever else
is set, as the specification says. Everything else (endpoint, headers, timeout, sampler, batch
sizes, resource attributes, ``OTEL_SERVICE_NAME``) is read by the SDK itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import engine
from control_plane.settings import Settings

__all__ = ["Tracing", "export_requested", "exporters_requested", "open_telemetry"]

log = logging.getLogger(__name__)

RunCall = Callable[..., Awaitable[engine.RunResult]]


class Tracing(Protocol):
    """What the run machinery uses of an export that is on (``tracing.OtelTracing``)."""

    @property
    def observer(self) -> engine.RunObserver: ...

    async def traced_run(
        self, run: RunCall, workflow: engine.Workflow, inputs: Mapping[str, Any], **kw: Any
    ) -> engine.RunResult:
        """``run(workflow, inputs, **kw)`` (the engine's), recorded as a run span and its steps'
        spans, children of the current context's span."""
        ...

    def traceparent(self) -> str | None:
        """The current context as a W3C ``traceparent`` (to carry to a worker), if any."""
        ...

    def continued(self, traceparent: str | None) -> AbstractContextManager[None]:
        """A block whose spans are children of ``traceparent``'s span (a worker's run)."""
        ...

    def shutdown(self) -> None:
        """Export what is buffered and stop (a process's last step)."""
        ...


def _off(value: str | None) -> bool:
    return value is None or value.strip().lower() in ("", "none")


def exporters_requested(env: Mapping[str, str] | None = None) -> list[str]:
    """The trace exporters the environment asks for (``[]``: export off)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = env.get("OTEL_TRACES_EXPORTER")
    if named is not None:
        if _off(named):
            return []
        return [name.strip().lower() for name in named.split(",") if not _off(name)]
    endpoints = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    return ["otlp"] if any(not _off(env.get(name)) for name in endpoints) else []


def export_requested(env: Mapping[str, str] | None = None) -> bool:
    return bool(exporters_requested(env))


def open_telemetry(settings: Settings, env: Mapping[str, str] | None = None) -> Tracing | None:
    """The process's export when the environment asks for one, else ``None`` (nothing of
    OpenTelemetry is imported then). Asked for without the ``otel`` extra installed: logged
    once, and the process runs without it rather than refusing to start."""
    exporters = exporters_requested(env)
    if not exporters:
        return None
    try:
        from control_plane.telemetry.tracing import build_tracing
    except ImportError as exc:
        log.warning(
            "OpenTelemetry export is configured (OTEL_*) but the `otel` extra is not installed "
            "(%s); tracing is off. Install it with: pip install 'rollgraph[otel]'",
            exc,
        )
        return None
    return build_tracing(exporters, capture_content=settings.otel_capture_content, env=env)
