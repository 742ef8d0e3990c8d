"""The caller's trace context, for the request's duration: a pure ASGI middleware that reads
the propagation headers (W3C ``traceparent``/``tracestate`` and ``baggage`` by default;
``OTEL_PROPAGATORS`` chooses) and makes their context current, so that a run started by the
request is a child of the caller's span, and a queued run carries it to its worker.

Installed only when export is on (``app.create_app``); it opens no span of its own (the run is
the span this service adds to the caller's trace).
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import propagate
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TraceContext"]


class TraceContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Header names as ASGI gives them (lower-case bytes), read once.
        self._fields = {f.lower().encode("latin-1") for f in propagate.get_global_textmap().fields}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in self._fields
        }
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
