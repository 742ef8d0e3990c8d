"""The typed client, blocking: ``SyncClient`` (``AsyncClient`` in ``aio`` is the same on
asyncio). Each method sends one ``calls`` request and returns the API's own response model.

```python
from control_plane.client import SyncClient

with SyncClient("http://127.0.0.1:8000", api_key) as rg:
    run = rg.run("product-video", {"prompt": "a red sneaker"}, mode="async")
    for seen in rg.follow(run.run_id):
        print(seen.status)
```
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from control_plane.client import calls, events
from control_plane.client import models as m
from control_plane.client.calls import Mode
from control_plane.client.core import Call, Retry, decode, failure, progress_key, run_timeout_s

__all__ = ["SyncClient"]

T = TypeVar("T")


class SyncClient:
    """``timeout_s`` bounds each request; a sync run or resume waits up to the server's run
    deadline (``run_deadline_s``, see ``core.run_timeout_s``) plus its store margin."""

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
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url
        self.timeout_s = timeout_s
        self.run_timeout_s = run_timeout_s(timeout_s, run_deadline_s)
        self.retry = retry or Retry()
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """Send ``call``, again when ``Retry`` says so; its parsed answer."""
        timeout_s = self.run_timeout_s if call.long else self.timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    headers=dict(call.headers),
                    timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
                )
            except httpx.TransportError as exc:
                wait = self.retry.after_error(call, attempt, exc)
                if wait is None:
                    raise failure(call, exc, timeout_s, self.url) from exc
            else:
                wait = self.retry.after_answer(call, attempt, response)
                if wait is None:
                    return decode(call, response)
            time.sleep(wait)

    def follow(self, run_id: str, *, interval_s: float = 0.5) -> Iterator[m.RunDetail]:
        """The run each time its status, attempt or steps change, until it succeeded or
        failed (the last one yielded), with each node's state while it runs (``steps``). Read
        when the run's event stream says it changed (``events``), else every ``interval_s``."""
        seen: tuple[object, ...] | None = None
        woken = self._wakeups(run_id)
        try:
            while True:
                run = self.get_run(run_id)
                if progress_key(run) != seen:
                    seen = progress_key(run)
                    yield run
                if run.status in m.TERMINAL:
                    return
                if next(woken, False) is False:  # no stream (any more): poll
                    time.sleep(interval_s)
        finally:
            woken.close()

    def _wakeups(self, run_id: str) -> Generator[bool]:
        cursor, broken = events.Cursor(), 0
        while not cursor.ended and broken < events.BROKEN_LIMIT:
            try:
                with self._http.stream(
                    "GET",
                    events.events_path(run_id),
                    headers=cursor.headers(),
                    timeout=events.TIMEOUT,
                ) as response:
                    if response.status_code == 204:  # its end was sent already
                        yield True
                        return
                    if response.status_code != 200:  # 404/405: an older server; 503: full
                        return
                    for line in response.iter_lines():
                        if cursor.feed(line):
                            broken = 0
                            yield True
                            if cursor.ended:
                                return
            except httpx.TransportError:
                broken += 1
                time.sleep(0.2 * broken)

    def apply(self, source: str, *, version: str | None = None) -> m.ApplyResult:
        return self.send(calls.apply(source, version=version))

    def workflows(self) -> list[m.WorkflowPublic]:
        return self.send(calls.workflows())

    def versions(self, workflow: str) -> list[m.VersionPublic]:
        return self.send(calls.versions(workflow))

    def archive_version(self, workflow: str, version: str) -> m.VersionPublic:
        """Archive a version: it serves no traffic; 409 while a label points at it."""
        return self.send(calls.archive_version(workflow, version))

    def diff(self, workflow: str, a: str, b: str) -> m.DiffPublic:
        return self.send(calls.diff(workflow, a, b))

    def promote(self, workflow: str, version: str, *, label: str = "prod") -> m.LabelPublic:
        return self.send(calls.promote(workflow, version, label=label))

    def rollback(self, workflow: str, *, label: str = "prod") -> m.LabelPublic:
        return self.send(calls.rollback(workflow, label=label))

    def labels(self, workflow: str) -> list[m.LabelPublic]:
        return self.send(calls.labels(workflow))

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
    ) -> m.RunPublic:
        """Run a workflow; a failed node is a run with ``status: failed``. ``mode="async"``
        answers at once (``follow`` it). Retried only under one ``Idempotency-Key``."""
        return self.send(
            calls.run(
                workflow,
                inputs,
                user_id=user_id,
                version=version,
                label=label,
                mode=mode,
                idempotency_key=idempotency_key,
            )
        )

    def resume(
        self, run_id: str, *, mode: Mode = "sync", idempotency_key: str | None = None
    ) -> m.RunPublic:
        """Resume a failed run; a repeat with the same ``idempotency_key`` answers the first."""
        return self.send(calls.resume(run_id, mode=mode, idempotency_key=idempotency_key))

    def get_run(self, run_id: str, *, attempt: int | None = None) -> m.RunDetail:
        return self.send(calls.get_run(run_id, attempt=attempt))

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
    ) -> list[m.RunPublic]:
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
        return self.send(call)

    def outcome(self, run_id: str, metrics: Mapping[str, bool | float]) -> m.OutcomeResult:
        return self.send(calls.outcome(run_id, metrics))

    def rollout_set(
        self, workflow: str, version: str, percent: float, *, label: str = "prod"
    ) -> m.RolloutPublic:
        return self.send(calls.rollout_set(workflow, version, percent, label=label))

    def rollout_set_many(
        self,
        workflow: str,
        candidates: Mapping[str, float] | Iterable[tuple[str, float]],
        *,
        label: str = "prod",
    ) -> m.RolloutPublic:
        return self.send(calls.rollout_set_many(workflow, candidates, label=label))

    def rollout_status(self, workflow: str, *, label: str = "prod") -> m.RolloutPublic:
        return self.send(calls.rollout_status(workflow, label=label))

    def assignment(
        self, workflow: str, user_id: str, *, label: str = "prod"
    ) -> m.AssignmentPreview:
        """Which version ``user_id`` would get on ``label`` now, and why; no run."""
        return self.send(calls.assignment(workflow, user_id, label=label))

    def shadow_start(
        self,
        workflow: str,
        version: str,
        *,
        percent: float,
        max_cost_usd_per_hour: float,
        label: str = "prod",
    ) -> m.ShadowPublic:
        """Shadow ``percent`` of ``label``'s users with ``version`` (its output reaches no one)."""
        call = calls.shadow_start(
            workflow,
            version,
            percent=percent,
            max_cost_usd_per_hour=max_cost_usd_per_hour,
            label=label,
        )
        return self.send(call)

    def shadow_stop(self, workflow: str, *, label: str = "prod") -> m.ShadowPublic:
        return self.send(calls.shadow_stop(workflow, label=label))

    def shadow_show(self, workflow: str, *, label: str = "prod") -> m.ShadowPublic:
        return self.send(calls.shadow_show(workflow, label=label))

    def shadow_comparison(
        self, workflow: str, *, label: str = "prod", version: str | None = None
    ) -> m.ShadowComparison:
        """Served vs shadow on ``label``, paired by request, with a verdict in words."""
        return self.send(calls.shadow_comparison(workflow, label=label, version=version))

    def create_key(self, name: str, *, role: str) -> m.KeyCreated:
        return self.send(calls.create_key(name, role=role))

    def keys(self) -> list[m.KeyPublic]:
        return self.send(calls.keys())

    def revoke_key(self, name: str) -> m.KeyPublic:
        return self.send(calls.revoke_key(name))

    def experiment_start(self, body: Mapping[str, Any]) -> m.ExperimentPublic:
        return self.send(calls.experiment_start(body))

    def experiments(
        self, *, workflow: str | None = None, status: str | None = None
    ) -> list[m.ExperimentPublic]:
        return self.send(calls.experiments(workflow=workflow, status=status))

    def experiment_results(self, experiment_id: int) -> m.ExperimentView:
        return self.send(calls.experiment_results(experiment_id))

    def experiment_decisions(self, experiment_id: int) -> list[m.DecisionPublic]:
        return self.send(calls.experiment_decisions(experiment_id))

    def experiment_evaluate(self, experiment_id: int) -> m.DecisionPublic:
        return self.send(calls.experiment_evaluate(experiment_id))

    def experiment_stop(self, experiment_id: int) -> m.ExperimentPublic:
        return self.send(calls.experiment_stop(experiment_id))

    def experiment_resume(self, experiment_id: int) -> m.ExperimentPublic:
        return self.send(calls.experiment_resume(experiment_id))

    def audit(
        self,
        *,
        target_kind: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[m.AuditEntryPublic]:
        """Audit rows matching every given filter, newest first (admin)."""
        call = calls.audit(
            target_kind=target_kind, target=target, actor=actor, since=since, limit=limit
        )
        return self.send(call)
