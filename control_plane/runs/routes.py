"""HTTP routes of runs: ``POST /v1/run``, ``GET /v1/runs/{id}``, ``GET /v1/runs``.

``POST /v1/run`` is async (the engine is) and owns its two short units of work itself, one to
choose the version and one to store the result, so no transaction is held open while the graph
runs. A run whose node failed is still a 200 with ``status: failed``: it was accepted, ran and
is traced. Inputs that do not bind are a 422 listing each input problem. Running needs a
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
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import APIRouter, Header, Path, Query, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

import engine
from control_plane.api.auth import Principal, RunnerDep, ViewerDep, auth_responses
from control_plane.api.deps import SessionDep, SettingsDep
from control_plane.api.errors import ErrorBody, error_responses
from control_plane.errors import IdempotencyInProgress, IdempotencyKeyReused, InvalidInput
from control_plane.runs import idempotency, planning, service
from control_plane.runs.runner import Runner
from control_plane.runs.schemas import RunDetail, RunPublic, RunRequest, RunStatus
from control_plane.settings import Settings
from control_plane.store.db import session_scope

__all__ = ["router"]

log = logging.getLogger(__name__)

T = TypeVar("T")


router = APIRouter(prefix="/v1", tags=["runs"])


async def _unit_of_work(request: Request, work: Callable[[Session], T]) -> T:
    # The request boundary: commit on success, roll back on error; off the event loop, because
    # the store's driver is synchronous.
    factory = request.app.state.session_factory

    def run() -> T:
        with session_scope(factory) as session:
            return work(session)

    return await run_in_threadpool(run)


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

_RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    **auth_responses("runner"),
    **error_responses(404, 409, 413, 422),
    200: {
        "description": "The run (or, for a repeated `Idempotency-Key`, the first response).",
        "headers": {
            idempotency.REPLAYED_HEADER: {
                "description": "`true` when this is the stored response of an earlier request",
                "schema": {"type": "string", "enum": ["true"]},
            }
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
}


async def _claim(
    request: Request, *, principal: Principal, key: str, digest: str
) -> int | RunPublic:
    """The claim's id, or the stored response when this key already answered this request."""
    for _ in range(3):
        try:
            return await _unit_of_work(
                request,
                lambda s: idempotency.claim(s, principal=principal.name, key=key, digest=digest),
            )
        except IntegrityError:
            pass  # the caller already holds this key
        row = await _unit_of_work(
            request, lambda s: idempotency.find(s, principal=principal.name, key=key)
        )
        if row is None:
            continue  # released since our insert failed: claim it again
        if row.request_hash != digest:
            raise IdempotencyKeyReused(
                f"this key was used for a different request ({idempotency.HEADER}: {key!r})"
            )
        if row.status == "done" and row.response is not None:
            return RunPublic.model_validate(row.response)
        break
    raise IdempotencyInProgress(
        f"a request with this {idempotency.HEADER} is still running; retry later",
        retry_after_s=1,
    )


async def _execute(
    request: Request, body: RunRequest, settings: Settings, *, claim_id: int | None
) -> RunPublic:
    runner: Runner = request.app.state.runner
    plan = await _unit_of_work(request, lambda s: planning.plan_run(s, request=body))
    workflow = runner.workflow(version=plan.version, digest=plan.digest, definition=plan.definition)
    try:
        result = await runner.run(
            workflow, body.input, deadline_s=settings.run_deadline_s, attrs=plan.attrs
        )
    except engine.InputBindingError as exc:
        raise InvalidInput(
            f"the input does not fit {plan.workflow} {plan.version}: {exc}", problems=exc.problems
        ) from exc

    def record(session: Session) -> RunPublic:
        public = service.record_run(session, plan=plan, result=result)
        if claim_id is not None:
            idempotency.complete(session, claim_id=claim_id, response=public)
        return public

    return await _unit_of_work(request, record)


@router.post("/run", response_model=RunPublic, responses=_RUN_RESPONSES)
async def run_workflow(
    body: RunRequest,
    request: Request,
    response: Response,
    settings: SettingsDep,
    principal: RunnerDep,
    idempotency_key: IdempotencyKey = None,
) -> RunPublic:
    """Run a workflow version chosen by pin, label or the `prod` rollout; store run and trace."""
    if idempotency_key is None:
        return await _execute(request, body, settings, claim_id=None)
    digest = idempotency.request_hash(body)
    claimed = await _claim(request, principal=principal, key=idempotency_key, digest=digest)
    if isinstance(claimed, RunPublic):
        response.headers[idempotency.REPLAYED_HEADER] = "true"
        return claimed
    claim_id = claimed
    try:
        return await _execute(request, body, settings, claim_id=claim_id)
    except BaseException:
        # No response was stored: free the key so that the client can retry with it. Shielded,
        # so that a cancelled request (client gone) still releases it.
        with anyio.CancelScope(shield=True):
            try:
                await _unit_of_work(request, lambda s: idempotency.release(s, claim_id=claim_id))
            except Exception:
                log.exception("could not release idempotency claim %s", claim_id)
        raise


@router.get(
    "/runs/{run_id}",
    response_model=RunDetail,
    responses={**auth_responses("viewer"), **error_responses(404, 422)},
)
def get_run(
    run_id: Annotated[str, Path(min_length=1, max_length=64)],
    session: SessionDep,
    principal: ViewerDep,
) -> RunDetail:
    """A run with its trace (a step per node)."""
    return service.get_run(session, run_id=run_id)


@router.get(
    "/runs",
    response_model=list[RunPublic],
    responses={**auth_responses("viewer"), **error_responses(422)},
)
def list_runs(
    session: SessionDep,
    principal: ViewerDep,
    workflow: Annotated[str | None, Query(max_length=128)] = None,
    version: Annotated[str | None, Query(max_length=64)] = None,
    status: RunStatus | None = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RunPublic]:
    """Runs, newest first."""
    return service.list_runs(
        session,
        workflow=workflow,
        version=version,
        status=status,
        since=since,
        until=until,
        limit=limit,
    )
