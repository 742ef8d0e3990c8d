"""``GET /v1/runs/{run_id}/events``: a run's step and run events as server-sent events.

What the stream sends and what its ids mean: ``runs.events``; how it is fed and bounded:
``runs.stream``. A viewer key reads it (``Authorization: Bearer``, as every read; a browser's
``EventSource`` cannot send headers, so the console reads it with ``fetch``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response

from control_plane.access.deps import ViewerDep
from control_plane.runs.routes import RunId
from control_plane.runs.stream import EVENT_STREAM, EventStream, RunStreams

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["runs"])

_EXAMPLE = (
    "retry: 1000\n\n"
    "id: 1.0200\nevent: step\ndata: "
    '{"node":"draft","kind":"llm.generate","state":"running","attempts":1,"cost_usd":0.0,...}\n\n'
    "id: 1.2200\nevent: run\ndata: "
    '{"run_id":"...","status":"running","attempt":1,"cost_usd":0.0,"steps_done":0,...}\n\n'
)


def _error(description: str, **extra: Any) -> dict[str, Any]:
    # Errors are JSON (`ErrorBody`), not the route's `text/event-stream`: spelled out, since a
    # `model` would be documented under the route's media type.
    body = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    return {"description": description, "content": {"application/json": body}, **extra}


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "`text/event-stream`: `step` events (a node whose state changed), `run` events "
            "(status, attempt, cost, steps done of total) and a last `end` event, each with an "
            "`id` to send back as `Last-Event-ID` on reconnect; `: keep-alive` comments while "
            "quiet. Closes after `end`, or after `ROLLGRAPH_RUN_EVENTS_MAX_S` (reconnect)."
        ),
        "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": _EXAMPLE}},
    },
    204: {"description": "`Last-Event-ID` is the run's `end`: nothing more will come."},
    400: _error("`invalid_last_event_id`: not an id this stream sends."),
    401: _error("Unauthorized"),
    404: _error("Not Found"),
    422: _error("Unprocessable Entity"),
    429: _error("Too Many Requests", headers=_RETRY_AFTER),
    503: _error(
        "`too_many_streams` (this process' limit) or the store is away.", headers=_RETRY_AFTER
    ),
}


async def get_streams(request: Request) -> RunStreams:
    streams: RunStreams = request.app.state.run_streams
    return streams


@router.get(
    "/runs/{run_id}/events",
    response_model=None,
    response_class=EventStream,
    responses=_RESPONSES,
)
async def run_events(
    run_id: RunId,
    streams: Annotated[RunStreams, Depends(get_streams)],
    principal: ViewerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=20_000,
            description="the last event's id: resume after it, nothing sent twice",
        ),
    ] = None,
) -> Response:
    """A run's events as it runs, until it ends: which steps started and ended, with status,
    attempts, cost and latency, and the run's progress; on any replica."""
    return await streams.open(run_id=run_id, last_event_id=last_event_id)
