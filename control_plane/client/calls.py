"""Every API request the clients make, built once: the sync and the async client only send
these (``core.Call``) and return what they parse to."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from control_plane.client import models as m
from control_plane.client.core import IDEMPOTENCY_HEADER, Call, new_idempotency_key

__all__ = [
    "Mode",
    "apply",
    "archive_version",
    "assignment",
    "audit",
    "create_key",
    "diff",
    "experiment_decisions",
    "experiment_evaluate",
    "experiment_results",
    "experiment_resume",
    "experiment_start",
    "experiment_stop",
    "experiments",
    "get_run",
    "keys",
    "labels",
    "outcome",
    "promote",
    "resume",
    "revoke_key",
    "rollback",
    "rollout_set",
    "rollout_set_many",
    "rollout_status",
    "run",
    "runs",
    "shadow_comparison",
    "shadow_show",
    "shadow_start",
    "shadow_stop",
    "versions",
    "workflows",
]

M = TypeVar("M", bound=BaseModel)
Mode = Literal["sync", "async"]


def _one(model: type[M]) -> Callable[[Any], M]:
    return model.model_validate


def _many(model: type[M]) -> Callable[[Any], list[M]]:
    return lambda data: [model.model_validate(item) for item in data]


def _seg(text: str) -> str:
    # A name is one path segment: "a/b" or "?" must not change which route answers.
    return quote(text, safe="")


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def apply(source: str, *, version: str | None = None) -> Call[m.ApplyResult]:
    body = {"source": source, **_given(version=version)}
    return Call("POST", "/v1/workflows", _one(m.ApplyResult), json=body)


def workflows() -> Call[list[m.WorkflowPublic]]:
    return Call("GET", "/v1/workflows", _many(m.WorkflowPublic))


def versions(workflow: str) -> Call[list[m.VersionPublic]]:
    return Call("GET", f"/v1/workflows/{_seg(workflow)}/versions", _many(m.VersionPublic))


def archive_version(workflow: str, version: str) -> Call[m.VersionPublic]:
    path = f"/v1/workflows/{_seg(workflow)}/versions/{_seg(version)}/archive"
    return Call("POST", path, _one(m.VersionPublic), safe=True)


def diff(workflow: str, a: str, b: str) -> Call[m.DiffPublic]:
    path = f"/v1/workflows/{_seg(workflow)}/diff"
    return Call("GET", path, _one(m.DiffPublic), params={"a": a, "b": b})


def promote(workflow: str, version: str, *, label: str = "prod") -> Call[m.LabelPublic]:
    path = f"/v1/workflows/{_seg(workflow)}/labels/{_seg(label)}"
    return Call("PUT", path, _one(m.LabelPublic), json={"version": version}, safe=True)


def rollback(workflow: str, *, label: str = "prod") -> Call[m.LabelPublic]:
    path = f"/v1/workflows/{_seg(workflow)}/labels/{_seg(label)}/rollback"
    return Call("POST", path, _one(m.LabelPublic))


def labels(workflow: str) -> Call[list[m.LabelPublic]]:
    return Call("GET", f"/v1/workflows/{_seg(workflow)}/labels", _many(m.LabelPublic))


def run(
    workflow: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    user_id: str | None = None,
    version: str | None = None,
    label: str | None = None,
    mode: Mode = "sync",
    idempotency_key: str | None = None,
) -> Call[m.RunPublic]:
    """A run; without ``idempotency_key`` one of the client's own, so that the client's
    retries of this call never run (and bill) it twice."""
    body = {"workflow": workflow, "input": dict(inputs or {}), "mode": mode}
    body |= _given(user_id=user_id, version=version, label=label)
    headers = {IDEMPOTENCY_HEADER: idempotency_key or new_idempotency_key()}
    long = mode == "sync"
    return Call(
        "POST", "/v1/run", _one(m.RunPublic), json=body, headers=headers, long=long, runs=True
    )


def resume(
    run_id: str, *, mode: Mode = "sync", idempotency_key: str | None = None
) -> Call[m.RunPublic]:
    """A failed run again from its completed steps, under an ``Idempotency-Key`` as ``run``:
    a repeat answers the first resume (the server resumes only a failed run anyway)."""
    path = f"/v1/runs/{_seg(run_id)}/resume"
    headers = {IDEMPOTENCY_HEADER: idempotency_key or new_idempotency_key()}
    return Call(
        "POST",
        path,
        _one(m.RunPublic),
        json={"mode": mode},
        headers=headers,
        long=mode == "sync",
        runs=True,
    )


def get_run(run_id: str, *, attempt: int | None = None) -> Call[m.RunDetail]:
    params = _given(attempt=attempt)
    return Call("GET", f"/v1/runs/{_seg(run_id)}", _one(m.RunDetail), params=params)


def runs(
    *,
    workflow: str | None = None,
    version: str | None = None,
    status: str | None = None,
    mode: str | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 100,
) -> Call[list[m.RunPublic]]:
    """Runs matching every given filter, newest first."""
    params = _given(workflow=workflow, version=version, status=status, mode=mode)
    params |= _given(since=since, until=until, limit=limit)
    return Call("GET", "/v1/runs", _many(m.RunPublic), params=params)


def outcome(run_id: str, metrics: Mapping[str, bool | float]) -> Call[m.OutcomeResult]:
    path = f"/v1/runs/{_seg(run_id)}/outcome"
    return Call("POST", path, _one(m.OutcomeResult), json=dict(metrics), safe=True)


def rollout_set(
    workflow: str, version: str, percent: float, *, label: str = "prod"
) -> Call[m.RolloutPublic]:
    path = f"/v1/workflows/{_seg(workflow)}/rollouts/{_seg(label)}"
    body = {"version": version, "percent": percent}
    return Call("PUT", path, _one(m.RolloutPublic), json=body, safe=True)


def rollout_set_many(
    workflow: str,
    candidates: Mapping[str, float] | Iterable[tuple[str, float]],
    *,
    label: str = "prod",
) -> Call[m.RolloutPublic]:
    pairs = candidates.items() if isinstance(candidates, Mapping) else candidates
    path = f"/v1/workflows/{_seg(workflow)}/rollouts/{_seg(label)}"
    body = {"candidates": [{"version": v, "percent": p} for v, p in pairs]}
    return Call("PUT", path, _one(m.RolloutPublic), json=body, safe=True)


def rollout_status(workflow: str, *, label: str = "prod") -> Call[m.RolloutPublic]:
    path = f"/v1/workflows/{_seg(workflow)}/rollouts/{_seg(label)}"
    return Call("GET", path, _one(m.RolloutPublic))


def assignment(workflow: str, user_id: str, *, label: str = "prod") -> Call[m.AssignmentPreview]:
    path = f"/v1/workflows/{_seg(workflow)}/labels/{_seg(label)}/assignment"
    return Call("GET", path, _one(m.AssignmentPreview), params={"user_id": user_id})


def _shadow_path(workflow: str, label: str) -> str:
    return f"/v1/workflows/{_seg(workflow)}/labels/{_seg(label)}/shadow"


def shadow_start(
    workflow: str,
    version: str,
    *,
    percent: float,
    max_cost_usd_per_hour: float,
    label: str = "prod",
) -> Call[m.ShadowPublic]:
    body = {"version": version, "percent": percent, "max_cost_usd_per_hour": max_cost_usd_per_hour}
    path = _shadow_path(workflow, label)
    return Call("PUT", path, _one(m.ShadowPublic), json=body, safe=True)


def shadow_stop(workflow: str, *, label: str = "prod") -> Call[m.ShadowPublic]:
    return Call("DELETE", _shadow_path(workflow, label), _one(m.ShadowPublic))


def shadow_show(workflow: str, *, label: str = "prod") -> Call[m.ShadowPublic]:
    return Call("GET", _shadow_path(workflow, label), _one(m.ShadowPublic))


def shadow_comparison(
    workflow: str, *, label: str = "prod", version: str | None = None
) -> Call[m.ShadowComparison]:
    params = {"version": version} if version is not None else None
    path = f"{_shadow_path(workflow, label)}/comparison"
    return Call("GET", path, _one(m.ShadowComparison), params=params)


def create_key(name: str, *, role: str) -> Call[m.KeyCreated]:
    return Call("POST", "/v1/keys", _one(m.KeyCreated), json={"name": name, "role": role})


def keys() -> Call[list[m.KeyPublic]]:
    return Call("GET", "/v1/keys", _many(m.KeyPublic))


def revoke_key(name: str) -> Call[m.KeyPublic]:
    return Call("DELETE", f"/v1/keys/{_seg(name)}", _one(m.KeyPublic))


def experiment_start(body: Mapping[str, Any]) -> Call[m.ExperimentPublic]:
    return Call("POST", "/v1/experiments", _one(m.ExperimentPublic), json=dict(body))


def experiments(
    *, workflow: str | None = None, status: str | None = None
) -> Call[list[m.ExperimentPublic]]:
    params = _given(workflow=workflow, status=status)
    return Call("GET", "/v1/experiments", _many(m.ExperimentPublic), params=params)


def experiment_results(experiment_id: int) -> Call[m.ExperimentView]:
    return Call("GET", f"/v1/experiments/{experiment_id}/results", _one(m.ExperimentView))


def experiment_decisions(experiment_id: int) -> Call[list[m.DecisionPublic]]:
    path = f"/v1/experiments/{experiment_id}/decisions"
    return Call("GET", path, _many(m.DecisionPublic))


def experiment_evaluate(experiment_id: int) -> Call[m.DecisionPublic]:
    return Call("POST", f"/v1/experiments/{experiment_id}/evaluate", _one(m.DecisionPublic))


def experiment_stop(experiment_id: int) -> Call[m.ExperimentPublic]:
    return Call("POST", f"/v1/experiments/{experiment_id}/stop", _one(m.ExperimentPublic))


def experiment_resume(experiment_id: int) -> Call[m.ExperimentPublic]:
    return Call("POST", f"/v1/experiments/{experiment_id}/resume", _one(m.ExperimentPublic))


def audit(
    *,
    target_kind: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    limit: int = 100,
) -> Call[list[m.AuditEntryPublic]]:
    params = _given(target_kind=target_kind, target=target, actor=actor, since=since, limit=limit)
    return Call("GET", "/v1/audit", _many(m.AuditEntryPublic), params=params)
