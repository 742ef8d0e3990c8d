"""OpenTelemetry traces of runs: optional (the ``otel`` extra) and off unless the standard
``OTEL_*`` variables ask for an export.

Nothing here imports OpenTelemetry until export is on (``config.open_telemetry``), so a server
without the extra runs as before, and a server with it but without ``OTEL_*`` takes no tracing
path at all: no middleware, no observer, no span. When on, each run is one span
(``invoke_workflow {workflow}``) with one child per step (``spans``), built from the trace the
engine returns, with its real timestamps. Each HTTP request is a SERVER span (``middleware``),
a child of the caller's W3C ``traceparent``, and a run is the child of its request's span; a
queued run carries that context to the worker (``Tracing.traceparent`` / ``Tracing.continued``,
and ``run.traceparent`` for the outbox sweep).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from control_plane.telemetry.config import Tracing, export_requested, open_telemetry

if TYPE_CHECKING:
    from control_plane.telemetry.middleware import TraceContext

__all__ = ["Tracing", "export_requested", "open_telemetry", "trace_context_middleware"]


def trace_context_middleware() -> type[TraceContext] | None:
    """The middleware that opens each request's span in the caller's trace, or ``None`` without the
    ``otel`` extra (FastAPI brings the OpenTelemetry API; the SDK is what the extra adds)."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401

        from control_plane.telemetry.middleware import TraceContext
    except ImportError:
        return None
    return TraceContext
