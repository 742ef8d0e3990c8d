"""HTTP routes of runs: ``POST /v1/run``, ``GET /v1/runs/{id}``, ``GET /v1/runs``.

``POST /v1/run`` is async (the engine is) and owns its two short units of work itself, one to
choose the version and one to store the result, so no transaction is held open while the graph
runs. A run whose node failed is still a 200 with ``status: failed``: it was accepted, ran and
is traced. Inputs that do not bind are a 422 listing each input problem. Running needs a
runner key (or admin), reading runs a viewer key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query, Request
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

import engine
from control_plane.api.auth import RunnerDep, ViewerDep, auth_responses
from control_plane.api.deps import SessionDep, SettingsDep
from control_plane.api.errors import error_responses
from control_plane.errors import InvalidInput
from control_plane.runs import service
from control_plane.runs.runner import Runner
from control_plane.runs.schemas import RunDetail, RunPublic, RunRequest, RunStatus
from control_plane.store.db import session_scope

__all__ = ["router"]

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


@router.post(
    "/run",
    response_model=RunPublic,
    responses={**auth_responses("runner"), **error_responses(404, 409, 413, 422)},
)
async def run_workflow(
    body: RunRequest, request: Request, settings: SettingsDep, principal: RunnerDep
) -> RunPublic:
    """Run a workflow version chosen by pin, label or the `prod` rollout; store run and trace."""
    runner: Runner = request.app.state.runner
    plan = await _unit_of_work(request, lambda s: service.plan_run(s, request=body))
    workflow = runner.workflow(version=plan.version, digest=plan.digest, definition=plan.definition)
    try:
        result = await runner.run(
            workflow, body.input, deadline_s=settings.run_deadline_s, attrs=plan.attrs
        )
    except engine.InputBindingError as exc:
        raise InvalidInput(
            f"the input does not fit {plan.workflow} {plan.version}: {exc}", problems=exc.problems
        ) from exc
    return await _unit_of_work(request, lambda s: service.record_run(s, plan=plan, result=result))


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
