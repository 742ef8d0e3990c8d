"""HTTP routes of runs: ``POST /v1/run``, ``POST /v1/runs/{id}/resume``, ``GET /v1/runs[/{id}]``.

The routes parse and answer; ``Runs.submit`` (``execution``) plans, claims the idempotency key,
runs and records, through the batch writer: no transaction is held open while a graph runs.
Sync (the default): a run whose node failed is still a 200 with ``status: failed``:
it was accepted, ran and is traced. Async: a 202 with the run ``running`` and a ``Location``.
Inputs that do not bind are a 422 listing each input problem. Running and resuming need a
runner key (or admin), reading runs a viewer key.

With an ``Idempotency-Key`` header the run happens at most once per caller and key (see
``idempotency``): the key is claimed before the run, a repeat gets the first response again
with ``Idempotent-Replayed: true``, a repeat while the first still runs a 409 with
``Retry-After``, the key with another body a 422. A request that fails before its response
releases the key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, BackgroundTasks, Body, Header, Path, Query, Response, status

from control_plane.access.deps import RunnerDep, ViewerDep, auth_responses
from control_plane.api.deps import UnitDep
from control_plane.api.errors import ErrorBody, error_responses
from control_plane.api.params import LabelName, WorkflowName
from control_plane.errors import ValidationFailed
from control_plane.kit.storable import INT32_MAX, Storable
from control_plane.registry.deps import RegistryDep
from control_plane.runs import idempotency, reads, resumes
from control_plane.runs.activity import WorkflowActivity, activity
from control_plane.runs.deps import RunsDep
from control_plane.runs.preview import AssignmentPreview, preview_assignment
from control_plane.runs.schemas import (
    ResumeRequest,
    RunDetail,
    RunMode,
    RunPublic,
    RunRequest,
    RunStatus,
)

__all__ = ["router"]

log = logging.getLogger(__name__)

T = TypeVar("T")


router = APIRouter(prefix="/v1", tags=["runs"])


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        min_length=1,
        max_length=idempotency.KEY_MAX_LENGTH,
        pattern=idempotency.KEY_PATTERN,
        description=(
            "Run at most once per API key and this key (1-255 printable ASCII characters): a "
            "repeat gets the first response again, with `Idempotent-Replayed: true`."
        ),
    ),
]

_REPLAYED = {
    idempotency.REPLAYED_HEADER: {
        "description": "`true` when this is the stored response of an earlier request",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **auth_responses("runner"),
    **error_responses(404, 409, 413, 422, 503),
    200: {
        "description": "The finished run (or, for a repeated `Idempotency-Key`, the first "
        "response).",
        "headers": _REPLAYED,
    },
    202: {
        "model": RunPublic,
        "description": "`mode: async`: the run was stored `running`; read it at `Location`.",
        "headers": {
            "Location": {"description": "the run", "schema": {"type": "string"}},
            **_REPLAYED,
        },
    },
    409: {
        "model": ErrorBody,
        "description": (
            "Archived version, a version that no longer compiles, or (`idempotency_in_progress`)"
            " an earlier request with the same `Idempotency-Key` is still running."
        ),
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before retrying (`idempotency_in_progress`)",
                "schema": {"type": "integer"},
            }
        },
    },
    422: {
        "model": ErrorBody,
        "description": (
            "Invalid request, inputs that do not bind, or (`idempotency_key_reused`) an "
            "`Idempotency-Key` already used for a different request."
        ),
    },
    429: {
        "model": ErrorBody,
        "description": (
            "`too_many_failed_keys`, or `queue_full`: `mode: async` while the run queue is past"
            " `ROLLGRAPH_QUEUE_MAX_DEPTH` or `ROLLGRAPH_QUEUE_MAX_WAIT_S` (see `GET /v1/queue`);"
            " nothing was stored."
        ),
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        },
    },
}


def _answer(response: Response, run: RunPublic, *, replayed: bool = False) -> RunPublic:
    if run.mode == "async":
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/v1/runs/{run.run_id}"
    if replayed:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return run


@router.post("/run", response_model=RunPublic, responses=_RUN_RESPONSES)
async def run_workflow(
    body: RunRequest,
    response: Response,
    runs: RunsDep,
    registry: RegistryDep,
    principal: RunnerDep,
    background: BackgroundTasks,
    idempotency_key: IdempotencyKey = None,
) -> RunPublic:
    """Run a workflow version chosen by pin, label or rollout; store run and trace. `mode:
    async` answers 202 at once; the run is read later."""
    submitted = await runs.submit(
        body, registry=registry, principal=principal.name, idempotency_key=idempotency_key
    )
    if submitted.after is not None:
        background.add_task(_after_answer, submitted.after)
    return _answer(response, submitted.run, replayed=submitted.replayed)


async def _after_answer(work: Callable[[], None]) -> None:
    # Async, so that it runs on the event loop: a sync task would run on a worker thread.
    work()


RunId = Annotated[str, Path(min_length=1, max_length=64), Storable]


@router.post(
    "/runs/{run_id}/resume",
    response_model=RunPublic,
    responses={
        **auth_responses("runner"),
        **error_responses(404, 409, 413, 422, 503),
        200: {
            "description": "The resumed run, finished (`mode: sync`), or for a repeated "
            "`Idempotency-Key` the first answer.",
            "headers": _REPLAYED,
        },
        202: {
            "model": RunPublic,
            "description": "`mode: async`: the run is `running` again; read it at `Location`.",
            "headers": {
                "Location": {"description": "the run", "schema": {"type": "string"}},
                **_REPLAYED,
            },
        },
    },
)
async def resume_run(
    run_id: RunId,
    response: Response,
    runs: RunsDep,
    principal: RunnerDep,
    body: Annotated[ResumeRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> RunPublic:
    """Run a failed run again under its run id, on its version and input: the steps it
    completed come from its step cache, neither executed nor billed again. 409 unless failed;
    with an `Idempotency-Key`, a repeat gets the first resume's answer."""
    asynchronous = body is not None and body.mode == "async"
    submitted = await resumes.resume_once(
        runs,
        run_id,
        asynchronous=asynchronous,
        principal=principal.name,
        key=idempotency_key,
        budget=body.budget if body is not None else None,
    )
    if asynchronous:  # the resume's mode, not the run's first one
        response.status_code = status.HTTP_202_ACCEPTED
        response.headers["Location"] = f"/v1/runs/{run_id}"
    if submitted.replayed:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    return submitted.run


@router.get(
    "/runs/activity",
    response_model=list[WorkflowActivity],
    responses={**auth_responses("viewer"), **error_responses(422)},
)
async def runs_activity(
    unit: UnitDep,
    principal: ViewerDep,
    window_s: Annotated[
        float, Query(gt=0, le=7 * 86_400, description="the last this many seconds")
    ] = 3600,
) -> list[WorkflowActivity]:
    """Per workflow, the runs started in the last `window_s` seconds (shadow runs left out):
    how many, ended, failed, the error ratio and the cost per ended run."""
    return await unit(partial(activity, window_s=window_s))


@router.get(
    "/runs/{run_id}",
    response_model=RunDetail,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def get_run(
    run_id: RunId,
    unit: UnitDep,
    principal: ViewerDep,
    attempt: Annotated[
        int | None, Query(ge=1, le=INT32_MAX, description="this attempt's trace")
    ] = None,
) -> RunDetail:
    """A run with its trace (a step per node): the newest attempt's, or `attempt`'s."""
    return await unit(partial(reads.get_run, run_id=run_id, attempt=attempt))


@router.get(
    "/runs",
    response_model=list[RunPublic],
    responses={**auth_responses("viewer"), **error_responses(422)},
)
async def list_runs(
    unit: UnitDep,
    principal: ViewerDep,
    workflow: Annotated[str | None, Query(max_length=128), Storable] = None,
    version: Annotated[str | None, Query(max_length=64), Storable] = None,
    label: Annotated[
        str | None,
        Query(max_length=100, description="routed by this label (with `workflow`)"),
        Storable,
    ] = None,
    user_id: Annotated[
        str | None,
        Query(max_length=200, description="this user's runs (with `workflow`)"),
        Storable,
    ] = None,
    status: RunStatus | None = None,
    mode: RunMode | None = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RunPublic]:
    """Runs, newest first. Page back with `until` set to the oldest `created_at` shown."""
    if workflow is None and (label is not None or user_id is not None):
        # Indexed per workflow: across every workflow these would scan the whole table.
        given = "label" if label is not None else "user_id"
        raise ValidationFailed(f"filter by `{given}` together with `workflow`")
    return await unit(
        partial(
            reads.list_runs,
            workflow=workflow,
            version=version,
            label=label,
            user_id=user_id,
            status=status,
            mode=mode,
            since=since,
            until=until,
            limit=limit,
        )
    )


@router.get(
    "/workflows/{name}/labels/{label}/assignment",
    response_model=AssignmentPreview,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
async def get_assignment(
    name: WorkflowName,
    label: LabelName,
    unit: UnitDep,
    principal: ViewerDep,
    user_id: Annotated[
        str,
        Query(min_length=0, max_length=200, description="the user (sticky unit) to place"),
        Storable,
    ],
) -> AssignmentPreview:
    """Which version `user_id` would get on `label` now, and why (label, rollout bucket or
    experiment arm, with the figures behind it), with no run and no side effect."""
    return await unit(partial(preview_assignment, workflow=name, label=label, user_id=user_id))
