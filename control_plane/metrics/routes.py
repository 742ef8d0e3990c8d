"""``GET /metrics``: the Prometheus exposition, without an API key (like ``/healthz``).

Content negotiation follows the scraper's ``Accept`` header: OpenMetrics when it asks for
``application/openmetrics-text`` (Prometheus does by default; only that format carries
exemplars), else the classic text format.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder

from control_plane.metrics.instruments import Metrics

__all__ = ["router"]

router = APIRouter(tags=["metrics"])

_FORMATS = {
    "text/plain": {"schema": {"type": "string"}},
    "application/openmetrics-text": {"schema": {"type": "string"}},
}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus metrics", "content": _FORMATS}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this server (of every worker, in multiprocess mode)."""
    registry: Metrics = request.app.state.metrics
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    # A sync endpoint: runs in the thread pool, since the store-backed gauges query the store.
    return Response(encode(registry.registry), media_type=content_type)
