"""Pure ASGI middleware: count HTTP requests by route *template* (``kit.routes``), method and
status class. Methods outside the standard set are ``OTHER``.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.kit.routes import UNMATCHED, route_template
from control_plane.metrics.instruments import Metrics

__all__ = ["UNMATCHED", "HttpMetrics", "route_template"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before a response is answered 500 further out

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            method = scope.get("method", "GET")
            self.metrics.observe_http(
                route=route_template(scope),
                method=method if method in _METHODS else "OTHER",
                status=status,
                duration_s=time.perf_counter() - started,
            )
