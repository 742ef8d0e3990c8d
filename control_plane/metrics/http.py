"""Pure ASGI middleware: count HTTP requests by route *template*, method and status class.

The template (``/v1/runs/{run_id}``) comes from the route Starlette matched
(``scope["route"]``, set while routing); a request that never reached routing (refused by an
outer middleware, such as a body over the size limit) is matched against the app's routes
here. A path that matches no route is ``unmatched``: a scanner probing a thousand paths adds
one label value, not a thousand. Methods outside the standard set are ``OTHER``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.metrics.instruments import Metrics

__all__ = ["UNMATCHED", "HttpMetrics", "route_template"]

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every endpoint route, in routing order. FastAPI may keep an included router as one
    entry (``original_router``) whose routes already carry their full path."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None and not getattr(getattr(route, "include_context", None), "prefix", ""):
            yield from _routes(inner.routes)
        else:
            yield route


def route_template(scope: Scope) -> str:
    """The matched route's path template, or ``unmatched``."""
    route: Any = scope.get("route")
    if route is None:
        app: Any = scope.get("app")
        for candidate in _routes(getattr(getattr(app, "router", None), "routes", ())):
            match, _ = candidate.matches(scope)
            if match is not Match.NONE:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


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
