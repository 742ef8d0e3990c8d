"""The typed client on asyncio: ``AsyncClient``, method for method ``SyncClient`` awaited,
sending the same ``calls`` requests with the same retries.

```python
from control_plane.client import AsyncClient

async with AsyncClient("http://127.0.0.1:8000", api_key) as rg:
    run = await rg.run("product-video", {"prompt": "a red sneaker"}, mode="async")
    async for seen in rg.follow(run.run_id):
        print(seen.status)
```
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from control_plane.client import calls, events
from control_plane.client import models as m
from control_plane.client.calls import Mode
from control_plane.client.core import Call, Retry, decode, failure, progress_key, run_timeout_s

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url
        self.timeout_s = timeout_s
        self.run_timeout_s = run_timeout_s(timeout_s, run_deadline_s)
        self.retry = retry or Retry()
        self._http = httpx.AsyncClient(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send ``call``, again when ``Retry`` says so; its parsed answer."""
        timeout_s = self.run_timeout_s if call.long else self.timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
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
            await asyncio.sleep(wait)

    async def follow(self, run_id: str, *, interval_s: float = 0.5) -> AsyncIterator[m.RunDetail]:
        """The run each time its status, attempt or steps change, until it succeeded or
        failed (the last one yielded), with each node's state while it runs (``steps``). Read
        when the run's event stream says it changed (``events``), else every ``interval_s``."""
        seen: tuple[object, ...] | None = None
        woken = self._wakeups(run_id)
        try:
            while True:
                run = await self.get_run(run_id)
                if progress_key(run) != seen:
                    seen = progress_key(run)
                    yield run
                if run.status in m.TERMINAL:
                    return
                if await anext(woken, False) is False:  # no stream (any more): poll
                    await asyncio.sleep(interval_s)
        finally:
            await woken.aclose()

    async def _wakeups(self, run_id: str) -> AsyncGenerator[bool]:
        cursor, broken = events.Cursor(), 0
        while not cursor.ended and broken < events.BROKEN_LIMIT:
            try:
                async with self._http.stream(
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
                    async for line in response.aiter_lines():
                        if cursor.feed(line):
                            broken = 0
                            yield True
                            if cursor.ended:
                                return
            except httpx.TransportError:
                broken += 1
                await asyncio.sleep(0.2 * broken)

    async def apply(self, source: str, *, version: str | None = None) -> m.ApplyResult:
        return await self.send(calls.apply(source, version=version))

    async def workflows(self) -> list[m.WorkflowPublic]:
        return await self.send(calls.workflows())

    async def versions(self, workflow: str) -> list[m.VersionPublic]:
        return await self.send(calls.versions(workflow))

    async def archive_version(self, workflow: str, version: str) -> m.VersionPublic:
        """Archive a version: it serves no traffic; 409 while a label points at it."""
        return await self.send(calls.archive_version(workflow, version))

    async def diff(self, workflow: str, a: str, b: str) -> m.DiffPublic:
        return await self.send(calls.diff(workflow, a, b))

    async def promote(self, workflow: str, version: str, *, label: str = "prod") -> m.LabelPublic:
        return await self.send(calls.promote(workflow, version, label=label))

    async def rollback(self, workflow: str, *, label: str = "prod") -> m.LabelPublic:
        return await self.send(calls.rollback(workflow, label=label))

    async def labels(self, workflow: str) -> list[m.LabelPublic]:
        return await self.send(calls.labels(workflow))

    async def run(
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
        return await self.send(
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

    async def resume(
        self, run_id: str, *, mode: Mode = "sync", idempotency_key: str | None = None
    ) -> m.RunPublic:
        """Resume a failed run; a repeat with the same ``idempotency_key`` answers the first."""
        return await self.send(calls.resume(run_id, mode=mode, idempotency_key=idempotency_key))

    async def get_run(self, run_id: str, *, attempt: int | None = None) -> m.RunDetail:
        return await self.send(calls.get_run(run_id, attempt=attempt))

    async def runs(
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
        return await self.send(call)

    async def outcome(self, run_id: str, metrics: Mapping[str, bool | float]) -> m.OutcomeResult:
        return await self.send(calls.outcome(run_id, metrics))

    async def rollout_set(
        self, workflow: str, version: str, percent: float, *, label: str = "prod"
    ) -> m.RolloutPublic:
        return await self.send(calls.rollout_set(workflow, version, percent, label=label))

    async def rollout_set_many(
        self,
        workflow: str,
        candidates: Mapping[str, float] | Iterable[tuple[str, float]],
        *,
        label: str = "prod",
    ) -> m.RolloutPublic:
        return await self.send(calls.rollout_set_many(workflow, candidates, label=label))

    async def rollout_status(self, workflow: str, *, label: str = "prod") -> m.RolloutPublic:
        return await self.send(calls.rollout_status(workflow, label=label))

    async def assignment(
        self, workflow: str, user_id: str, *, label: str = "prod"
    ) -> m.AssignmentPreview:
        """Which version ``user_id`` would get on ``label`` now, and why; no run."""
        return await self.send(calls.assignment(workflow, user_id, label=label))

    async def shadow_start(
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
        return await self.send(call)

    async def shadow_stop(self, workflow: str, *, label: str = "prod") -> m.ShadowPublic:
        return await self.send(calls.shadow_stop(workflow, label=label))

    async def shadow_show(self, workflow: str, *, label: str = "prod") -> m.ShadowPublic:
        return await self.send(calls.shadow_show(workflow, label=label))

    async def shadow_comparison(
        self, workflow: str, *, label: str = "prod", version: str | None = None
    ) -> m.ShadowComparison:
        """Served vs shadow on ``label``, paired by request, with a verdict in words."""
        return await self.send(calls.shadow_comparison(workflow, label=label, version=version))

    async def create_key(self, name: str, *, role: str) -> m.KeyCreated:
        return await self.send(calls.create_key(name, role=role))

    async def keys(self) -> list[m.KeyPublic]:
        return await self.send(calls.keys())

    async def revoke_key(self, name: str) -> m.KeyPublic:
        return await self.send(calls.revoke_key(name))

    async def experiment_start(self, body: Mapping[str, Any]) -> m.ExperimentPublic:
        return await self.send(calls.experiment_start(body))

    async def experiments(
        self, *, workflow: str | None = None, status: str | None = None
    ) -> list[m.ExperimentPublic]:
        return await self.send(calls.experiments(workflow=workflow, status=status))

    async def experiment_results(self, experiment_id: int) -> m.ExperimentView:
        return await self.send(calls.experiment_results(experiment_id))

    async def experiment_decisions(self, experiment_id: int) -> list[m.DecisionPublic]:
        return await self.send(calls.experiment_decisions(experiment_id))

    async def experiment_evaluate(self, experiment_id: int) -> m.DecisionPublic:
        return await self.send(calls.experiment_evaluate(experiment_id))

    async def experiment_stop(self, experiment_id: int) -> m.ExperimentPublic:
        return await self.send(calls.experiment_stop(experiment_id))

    async def experiment_resume(self, experiment_id: int) -> m.ExperimentPublic:
        return await self.send(calls.experiment_resume(experiment_id))

    async def audit(
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
        return await self.send(call)
