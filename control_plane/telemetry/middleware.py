"""A SERVER span per HTTP request, in the caller's trace: a pure ASGI middleware.

It reads the propagation headers (W3C ``traceparent``/``tracestate`` and ``baggage`` by default;
``OTEL_PROPAGATORS`` chooses), opens the request's span as their child (a new trace without
them) and makes it current, so that a run started by the request is the span's child and a
queued run carries it to its worker. The span follows the HTTP semantic conventions: named
``{method} {route}`` (the route's template, never the raw path, which carries ids), with
``http.request.method``, ``http.route``, ``http.response.status_code``, ``url.path``,
``url.scheme``, and ``error.type`` on a 5xx or an exception (a 4xx is the client's error, not
the server's: the span stays unset).

Installed only when export is on (``app.create_app``): with OpenTelemetry off the app has no
such middleware at all. The export is opened with the app's runtime, after the middleware
stack is built, so the middleware asks ``tracing()`` for it on each request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.kit.routes import UNMATCHED, route_template

__all__ = ["TraceContext"]

# The methods the conventions know; any other is reported as ``_OTHER`` (a scanner's made-up
# method must not become a new span name).
_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})
_METHODS |= {"TRACE", "QUERY"}


class TraceContext:
    def __init__(self, app: ASGIApp, *, tracing: Callable[[], Any] | None = None) -> None:
        self.app = app
        self._tracing = tracing or (lambda: None)
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
        parent = propagate.extract(carrier) if carrier else otel_context.get_current()
        tracing = self._tracing()
        tracer: trace_api.Tracer | None = getattr(tracing, "tracer", None)
        if tracer is None:  # no export after all (or not yet open): the caller's context only
            token = otel_context.attach(parent)
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        await self._served(tracer, parent, scope, receive, send)

    async def _served(
        self,
        tracer: trace_api.Tracer,
        parent: otel_context.Context,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        raw_method = str(scope.get("method", "GET"))
        method = raw_method if raw_method in _METHODS else "_OTHER"
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        if method == "_OTHER":
            attrs["http.request.method_original"] = raw_method
        span = tracer.start_span(method, context=parent, kind=SpanKind.SERVER, attributes=attrs)
        status = 500  # an exception before a response is answered 500 further out

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
            await send(message)

        token = otel_context.attach(trace_api.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, tracking_send)
        except BaseException as exc:
            if status == 500:  # nothing was sent: the error handler further out answers 500
                span.set_attribute("http.response.status_code", 500)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, repr(exc)))
            raise
        else:
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        finally:
            otel_context.detach(token)
            route = route_template(scope)
            if route != UNMATCHED:
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            span.end()
