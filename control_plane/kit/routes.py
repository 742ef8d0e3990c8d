"""The route template a request matched (``/v1/runs/{run_id}``), for what labels requests: the
HTTP metrics and the request spans. Never the raw path, which carries ids.

The template comes from the route Starlette matched (``scope["route"]``, set while routing); a
request that never reached routing (refused by an outer middleware, such as a body over the size
limit) is matched against the app's routes here. A path that matches no route is ``unmatched``:
a scanner probing a thousand paths adds one label value, not a thousand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from starlette.routing import Match
from starlette.types import Scope

__all__ = ["UNMATCHED", "route_template"]

UNMATCHED = "unmatched"


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
