"""``GET /v1/queue`` and ``GET /v1/queue/dead-letters``: the run queue as operators see it.

Only with Redis (``REDIS_URL``): on the embedded default async runs run inside the server and
there is no queue, which the answer says (``enabled: false``; dead letters: 404 ``no_queue``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, Field

from control_plane.access.deps import ViewerDep, auth_responses
from control_plane.api.deps import SettingsDep
from control_plane.api.errors import error_responses
from control_plane.errors import NotFound
from control_plane.queue.pressure import refusal
from control_plane.queue.streams import RunQueue
from control_plane.store.redis import RedisLink

__all__ = ["router"]

router = APIRouter(prefix="/v1/queue", tags=["queue"])


class QueuePublic(BaseModel):
    enabled: bool = Field(description="whether async runs go through the Redis run queue")
    stream: str | None = None
    length: int | None = Field(default=None, description="entries on the stream")
    pending: int | None = Field(default=None, description="delivered, not yet acknowledged")
    dead: int | None = Field(default=None, description="entries in the dead-letter stream")
    waiting: int | None = Field(default=None, description="queued runs no worker took yet")
    oldest_wait_s: float | None = Field(
        default=None, description="how long the oldest waiting run has waited (0: none waits)"
    )
    max_depth: int | None = Field(
        default=None, description="`waiting` at which async submissions get 429 (0: no limit)"
    )
    max_wait_s: float | None = Field(
        default=None, description="`oldest_wait_s` past which they get 429 (0: no limit)"
    )
    accepting: bool | None = Field(
        default=None, description="whether an async submission would be queued now"
    )


class DeadLetterPublic(BaseModel):
    id: str = Field(description="the entry's id in the dead-letter stream")
    run_id: str
    error: str
    deliveries: int
    at: datetime


async def get_queue(request: Request) -> tuple[RunQueue, RedisLink] | None:
    """The process's run queue and its Redis link; ``None`` without ``REDIS_URL``."""
    queue: RunQueue | None = getattr(request.app.state, "queue", None)
    link: RedisLink | None = getattr(request.app.state, "redis", None)
    return None if queue is None or link is None else (queue, link)


QueueDep = Annotated[tuple[RunQueue, RedisLink] | None, Depends(get_queue)]

_U64_MAX = 2**64 - 1


def _entry_id(value: str | None) -> str | None:
    # Checked here because Redis would refuse it: each half of an id is a 64-bit number, and
    # nothing comes before 0-0 (`before` is exclusive). A refusal is the caller's 422, not a
    # Redis error. The pattern has made both halves ASCII digits (`\d` would also take other
    # scripts' digits, which int() reads and Redis does not).
    if value is None:
        return None
    ms, _, seq = value.partition("-")
    if int(ms) > _U64_MAX or int(seq) > _U64_MAX:
        raise ValueError("an entry id is two numbers of at most 64 bits, MS-SEQ")
    if int(ms) == int(seq) == 0:
        raise ValueError("no entry comes before 0-0: omit `before` for the first page")
    return value


EntryId = Annotated[
    str | None,
    Query(
        max_length=64, pattern=r"^[0-9]+-[0-9]+$", description="the last `id` of the page before"
    ),
    AfterValidator(_entry_id),
]


@router.get(
    "", response_model=QueuePublic, responses={**auth_responses("viewer"), **error_responses(503)}
)
async def queue_status(found: QueueDep, principal: ViewerDep, settings: SettingsDep) -> QueuePublic:
    """How many runs wait, for how long, run and failed for good, and whether async
    submissions are accepted (503 when Redis does not answer)."""
    if found is None:
        return QueuePublic(enabled=False)
    queue, link = found
    stats = await link.call("queue.stats", lambda _c: queue.stats())
    max_depth, max_wait_s = settings.queue_max_depth, settings.queue_max_wait_s
    return QueuePublic(
        enabled=True,
        stream=queue.stream,
        length=stats.length,
        pending=stats.pending,
        dead=stats.dead,
        waiting=stats.waiting,
        oldest_wait_s=round(stats.oldest_wait_s, 3),
        max_depth=max_depth,
        max_wait_s=max_wait_s,
        accepting=refusal(stats, max_depth=max_depth, max_wait_s=max_wait_s) is None,
    )


@router.get(
    "/dead-letters",
    response_model=list[DeadLetterPublic],
    responses={**auth_responses("viewer"), **error_responses(404, 503)},
)
async def dead_letters(
    found: QueueDep,
    principal: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: EntryId = None,
) -> list[DeadLetterPublic]:
    """Queued runs that failed for good, newest first, with their error; page with `before`
    (the last entry's `id`). Each can be resumed with `POST /v1/runs/{run_id}/resume`."""
    if found is None:
        raise NotFound("there is no run queue: async runs use one only with REDIS_URL set")
    queue, link = found
    entries = await link.call(
        "queue.dead_letters", lambda _c: queue.dead_letters(limit=limit, before=before)
    )
    return [
        DeadLetterPublic(id=e.id, run_id=e.run_id, error=e.error, deliveries=e.deliveries, at=e.at)
        for e in entries
    ]
