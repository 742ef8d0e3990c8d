"""``Client``: the first client's interface, kept for the scripts written against it.

Its methods are ``SyncClient``'s, with the same requests, retries and timeouts, but each answers
the API's JSON as plain dicts and lists (as it always did) instead of models. New code uses
``SyncClient`` or ``AsyncClient``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self, cast

import httpx

from control_plane.client import calls
from control_plane.client.calls import Mode
from control_plane.client.core import Call, Retry
from control_plane.client.sync import SyncClient

__all__ = ["Client"]


def _json(data: Any) -> Any:
    return data


class Client:
    """``Client(url, api_key).run("greet", {"prompt": "hi"})["run_id"]``: ``SyncClient``'s
    methods, answering JSON."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        run_deadline_s: float | None = None,
        retry: Retry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.typed = SyncClient(
            url,
            api_key,
            timeout_s=timeout_s,
            run_deadline_s=run_deadline_s,
            retry=retry,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.typed.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any request, e.g. ``_call("POST", "/v1/experiments/1/evaluate")``: its JSON."""
        known = {k: kwargs[k] for k in ("params", "json") if k in kwargs}
        return self.typed.send(Call(method, path, _json, **known))

    def _obj(self, call: Call[Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self.typed.send(dataclasses.replace(call, parse=_json)))

    def _list(self, call: Call[Any]) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.typed.send(dataclasses.replace(call, parse=_json)))

    def apply(self, source: str, *, version: str | None = None) -> dict[str, Any]:
        return self._obj(calls.apply(source, version=version))

    def workflows(self) -> list[dict[str, Any]]:
        return self._list(calls.workflows())

    def versions(self, workflow: str) -> list[dict[str, Any]]:
        return self._list(calls.versions(workflow))

    def archive_version(self, workflow: str, version: str) -> dict[str, Any]:
        return self._obj(calls.archive_version(workflow, version))

    def diff(self, workflow: str, a: str, b: str) -> dict[str, Any]:
        return self._obj(calls.diff(workflow, a, b))

    def promote(self, workflow: str, version: str, *, label: str = "prod") -> dict[str, Any]:
        return self._obj(calls.promote(workflow, version, label=label))

    def rollback(self, workflow: str, *, label: str = "prod") -> dict[str, Any]:
        return self._obj(calls.rollback(workflow, label=label))

    def labels(self, workflow: str) -> list[dict[str, Any]]:
        return self._list(calls.labels(workflow))

    def run(
        self,
        workflow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
        version: str | None = None,
        label: str | None = None,
        mode: Mode = "sync",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        call = calls.run(
            workflow,
            inputs,
            user_id=user_id,
            version=version,
            label=label,
            mode=mode,
            idempotency_key=idempotency_key,
        )
        return self._obj(call)

    def resume(
        self, run_id: str, *, mode: Mode = "sync", idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return self._obj(calls.resume(run_id, mode=mode, idempotency_key=idempotency_key))

    def get_run(self, run_id: str, *, attempt: int | None = None) -> dict[str, Any]:
        return self._obj(calls.get_run(run_id, attempt=attempt))

    def runs(
        self,
        *,
        workflow: str | None = None,
        version: str | None = None,
        status: str | None = None,
        mode: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Runs matching every given filter, newest first (``since``/``until``: ISO 8601)."""
        call = calls.runs(
            workflow=workflow,
            version=version,
            status=status,
            mode=mode,
            since=since,
            until=until,
            limit=limit,
        )
        return self._list(call)

    def outcome(self, run_id: str, metrics: Mapping[str, bool | float]) -> dict[str, Any]:
        return self._obj(calls.outcome(run_id, metrics))

    def rollout_set(
        self, workflow: str, version: str, percent: float, *, label: str = "prod"
    ) -> dict[str, Any]:
        return self._obj(calls.rollout_set(workflow, version, percent, label=label))

    def rollout_set_many(
        self,
        workflow: str,
        candidates: Mapping[str, float] | Iterable[tuple[str, float]],
        *,
        label: str = "prod",
    ) -> dict[str, Any]:
        return self._obj(calls.rollout_set_many(workflow, candidates, label=label))

    def rollout_status(self, workflow: str, *, label: str = "prod") -> dict[str, Any]:
        return self._obj(calls.rollout_status(workflow, label=label))

    def create_key(self, name: str, *, role: str) -> dict[str, Any]:
        return self._obj(calls.create_key(name, role=role))

    def keys(self) -> list[dict[str, Any]]:
        return self._list(calls.keys())

    def revoke_key(self, name: str) -> dict[str, Any]:
        return self._obj(calls.revoke_key(name))

    def experiment_start(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._obj(calls.experiment_start(body))

    def experiments(
        self, *, workflow: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        return self._list(calls.experiments(workflow=workflow, status=status))

    def experiment_results(self, experiment_id: int) -> dict[str, Any]:
        return self._obj(calls.experiment_results(experiment_id))

    def experiment_decisions(self, experiment_id: int) -> list[dict[str, Any]]:
        return self._list(calls.experiment_decisions(experiment_id))

    def experiment_evaluate(self, experiment_id: int) -> dict[str, Any]:
        return self._obj(calls.experiment_evaluate(experiment_id))

    def experiment_stop(self, experiment_id: int) -> dict[str, Any]:
        return self._obj(calls.experiment_stop(experiment_id))

    def experiment_resume(self, experiment_id: int) -> dict[str, Any]:
        return self._obj(calls.experiment_resume(experiment_id))

    def audit(
        self,
        *,
        target_kind: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Audit rows matching every given filter, newest first (admin)."""
        call = calls.audit(
            target_kind=target_kind, target=target, actor=actor, since=since, limit=limit
        )
        return self._list(call)
