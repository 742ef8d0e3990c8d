"""Choosing the version a request runs, and why.

A ``version`` pins that version (no rollout applies). Otherwise ``label`` (default ``prod``)
routes the request: the label's version, or a candidate of the label's rollout for the user id
(sticky; random without one); while an experiment runs on the label, its arms under its own salt
instead. The reason is ``pin``, ``label`` (no rollout: the label's version), ``rollout bucket
N`` (a rollout applies; N is the user's bucket, whether it got a candidate or the label's
version), ``experiment E bucket N`` or ``random`` (no user id).

``plan_run`` reads the store in the caller's session and never commits; ``plan`` serves the same
decision from the process's ``RegistryCache``, reading the store (one unit of work in a worker
thread) only when the cache has nothing valid. Errors are never cached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

import engine
from control_plane.errors import Conflict, InvalidInput
from control_plane.registry.cache import RegistryCache
from control_plane.rollouts.assignment import assign
from control_plane.rollouts.routing import Route, VersionData, read_pin, read_route
from control_plane.rollouts.shadowing import ShadowData, shadowed
from control_plane.runs.limits import request_limits
from control_plane.runs.schemas import RunRequest

__all__ = [
    "DEFAULT_LABEL",
    "RunPlan",
    "invalid_input",
    "plan",
    "plan_route",
    "plan_run",
    "read_route",
]

DEFAULT_LABEL = "prod"


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The version chosen for a request, and why (``attrs`` go into the engine's trace)."""

    workflow: str
    version: str
    digest: str
    definition: str
    label: str | None
    user_id: str | None
    reason: str
    attrs: dict[str, Any] = field(default_factory=dict)
    experiment_id: int | None = None  # the experiment that routed the run, and its ramp step
    experiment_step: int | None = None
    limits: dict[str, Any] | None = None  # what the request lowered (``runs.limits``)
    # The label's shadow candidate when this request is mirrored to it (after its answer).
    shadow: ShadowData | None = None


def _plan(
    request: RunRequest,
    data: VersionData,
    label: str | None,
    reason: str,
    route: Route | None = None,
    shadow: ShadowData | None = None,
    **attrs: Any,
) -> RunPlan:
    experiment = step = None
    if route is not None and route.experiment_id is not None:
        experiment, step = route.experiment_id, route.experiment_step
        attrs["experiment"] = experiment
    return RunPlan(
        workflow=request.workflow,
        version=data.version,
        digest=data.digest,
        definition=data.definition,
        label=label,
        user_id=request.user_id,
        reason=reason,
        attrs={"reason": reason, "label": label, **attrs},
        experiment_id=experiment,
        experiment_step=step,
        limits=request_limits(request),
        shadow=shadow,
    )


def _pinned(request: RunRequest, data: VersionData) -> RunPlan:
    if data.status != "active":
        raise Conflict(
            f"{request.workflow} {data.version} is archived; archived versions serve no traffic"
        )
    return _plan(request, data, None, "pin", assignment="pin")


def plan_route(request: RunRequest, route: Route) -> RunPlan:
    """The version ``route`` gives ``request`` (its user id), and why."""
    allocation = route.allocation
    chosen = assign(allocation, request.user_id)
    if chosen.reason == "random":
        reason = "random"  # no user id: split in proportion, but not sticky
    elif route.experiment_id is not None:
        reason = f"experiment {route.experiment_id} bucket {chosen.bucket}"
    elif allocation.rollout_buckets > 0:
        reason = f"rollout bucket {chosen.bucket}"
    else:
        reason = "label"
    return _plan(
        request,
        route.versions[chosen.version],
        route.label,
        reason,
        route,
        route.shadow if route.shadow and shadowed(route.shadow, request.user_id) else None,
        assignment=chosen.reason,
        bucket=chosen.bucket,
        baseline=allocation.baseline,
    )


def plan_run(session: Session, *, request: RunRequest) -> RunPlan:
    """Choose the version in ``session``: a ``version`` pin, else ``label`` (default ``prod``)
    with its rollout. ``NotFound`` for an unknown workflow, version or label; ``Conflict`` for a
    pinned archived version (archived versions serve no traffic)."""
    if request.version is not None:
        pin = read_pin(session, workflow=request.workflow, version=request.version)
        return _pinned(request, pin)
    label = request.label or DEFAULT_LABEL
    return plan_route(request, read_route(session, workflow=request.workflow, label=label))


async def plan(cache: RegistryCache, *, request: RunRequest) -> RunPlan:
    """``plan_run``'s decision, from the cache; on a miss, the store is read in one unit of work
    in a worker thread (the cache's session factory) and the result cached."""
    workflow = request.workflow
    if request.version is not None:
        version = request.version
        pin = await cache.fetch(
            ("pin", workflow, version),
            VersionData,
            lambda session: read_pin(session, workflow=workflow, version=version),
        )
        assert pin is not None  # read_pin raises rather than answer nothing
        return _pinned(request, pin)
    label = request.label or DEFAULT_LABEL
    route = await cache.fetch(
        ("route", workflow, label),
        Route,
        lambda session: read_route(session, workflow=workflow, label=label),
    )
    assert route is not None  # read_route raises rather than answer nothing
    return plan_route(request, route)


def invalid_input(plan: RunPlan, exc: engine.InputBindingError) -> InvalidInput:
    """The 422 of an input that does not bind to the planned version."""
    return InvalidInput(
        f"the input does not fit {plan.workflow} {plan.version}: {exc}", problems=exc.problems
    )
