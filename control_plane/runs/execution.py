"""Executing runs for the HTTP layer: sync, async and resumed, with their writes batched.

``Runs`` is the process's run machinery, created in the app's lifespan: the engine
(``Compiler``), the batch writer (every run's writes go through it, so concurrent runs share
transactions), the shared step cache, the async runs in flight, and the sweep that fails runs
orphaned by a process that stopped.

* Sync: run, then store the run and its trace; the response is built only after the commit, so
  every run that got a response can be read back.
* Async: check the input, store the run ``running`` and only then answer 202; the run goes on
  in a task and its steps are stored as they complete, so it survives its process (resumable).
* Resume: a failed run runs again under its run id with its completed steps preloaded.
* Queued (with Redis, ``queue`` set): an async run is stored ``queued`` and put on the run
  queue, and a ``rollgraph worker`` runs it (``execute_queued``) with its steps written to Redis
  as they complete; a worker that takes over a dead worker's run goes on from those steps.

On shutdown, async runs get ``shutdown_grace_s`` to finish; the rest are stopped and stored as
interrupted (resumable), and the writer drains before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import anyio
from sqlmodel import Session

import engine
from control_plane.errors import InvalidInput, Unavailable
from control_plane.metrics import Metrics
from control_plane.queue import Delivery, Fatal, RunQueue
from control_plane.runs import idempotency, service
from control_plane.runs.compiler import Compiler
from control_plane.runs.planning import RunPlan
from control_plane.runs.remote_steps import RemoteSteps
from control_plane.runs.schemas import RunPublic
from control_plane.runs.steps import RunSteps, SharedSteps
from control_plane.runs.writer import BatchWriter, WriterClosed
from control_plane.settings import Settings
from control_plane.store.db import SessionFactory
from control_plane.store.redis import RedisLink, RedisUnavailable
from control_plane.store.tables import RunStepRow

__all__ = ["Runs"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Runs:
    def __init__(
        self,
        *,
        runner: Compiler,
        session_factory: SessionFactory,
        settings: Settings,
        metrics: Metrics | None = None,
        redis: RedisLink | None = None,
        queue: RunQueue | None = None,
    ) -> None:
        self.runner = runner
        self.redis = redis
        # Steps shared with every replica and worker through Redis, when there is one.
        self.remote = RemoteSteps(redis) if redis is not None else None
        self.queue = queue
        # Counted after each write commits (the writer resolves only then): exactly once.
        self.metrics = metrics
        self.settings = settings
        self.writer = BatchWriter(session_factory)
        self.shared = SharedSteps()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="rollgraph-orphan-sweep")

    async def sweep(self) -> int:
        """Fail the runs orphaned by a stopped process (they become resumable)."""
        ended = await self._write(lambda s: service.fail_orphans(s))
        count = len(ended)
        if self.metrics is not None:
            # Only the sweep whose update changed a row gets it back: one count per orphan.
            for run in ended:
                self.metrics.observe_failed_end(**run._asdict())
        if count:
            log.warning("marked %d interrupted run(s) failed; they can be resumed", count)
        return count

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.orphan_sweep_s)
            try:
                await self.sweep()
            except Exception:  # the store may be briefly away; the next sweep retries
                log.exception("sweeping interrupted runs failed")

    async def aclose(self) -> None:
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._tasks:
            grace = self.settings.shutdown_grace_s
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await anyio.to_thread.run_sync(self.writer.close)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- the three ways to run ----------------------------------------------------------------
    async def run_sync(
        self, plan: RunPlan, inputs: Mapping[str, Any], *, claim: idempotency.Claim | None
    ) -> RunPublic:
        workflow = self._workflow(plan)
        steps = RunSteps(self.shared, remote=self.remote)
        deadline_s = self.settings.run_deadline_s
        result = await self._engine_run(
            workflow, inputs, plan=plan, deadline_s=deadline_s, attrs=plan.attrs, cache=steps
        )

        def record(session: Session) -> RunPublic:
            public = service.record_run(
                session, plan=plan, result=result, inputs=inputs, steps=_to_keep(steps, result)
            )
            if claim is not None:
                idempotency.complete(session, claim=claim, response=public)
            return public

        recorded = await self._write(record)
        if self.metrics is not None:
            self.metrics.observe_assignment(recorded)
            self.metrics.observe_run(recorded, result, first_end=True)
        return recorded

    async def run_async(
        self, plan: RunPlan, inputs: Mapping[str, Any], *, claim: idempotency.Claim | None
    ) -> RunPublic:
        workflow = self._workflow(plan)
        try:
            workflow.bind_inputs(inputs)  # a bad input is a 422 now, not a failed run later
        except engine.InputBindingError as exc:
            raise self._invalid_input(plan, exc) from exc
        run_id = engine.new_run_id()
        if self.queue is not None:
            return await self._enqueue(plan, inputs, run_id=run_id, claim=claim)
        deadline_s = self.settings.async_run_deadline_s
        deadline_at = service.deadline_after(deadline_s, margin_s=self.settings.run_store_margin_s)

        def accept(session: Session) -> RunPublic:
            public = service.start_run(
                session, plan=plan, run_id=run_id, inputs=inputs, deadline_at=deadline_at
            )
            if claim is not None:
                idempotency.complete(session, claim=claim, response=public)
            return public

        accepted = await self._write(accept)
        if self.metrics is not None:
            self.metrics.observe_assignment(accepted)  # its end is counted when it ends
        steps = RunSteps(self.shared, persist=self._persister(run_id), remote=self.remote)
        job = self._finish_in_background(
            run_id, workflow, inputs, steps, deadline_s=deadline_s, attrs=plan.attrs
        )
        self._spawn(job)
        return accepted

    async def resume(self, run_id: str, *, asynchronous: bool) -> RunPublic:
        deadline_s = (
            self.settings.async_run_deadline_s if asynchronous else self.settings.run_deadline_s
        )
        deadline_at = service.deadline_after(deadline_s, margin_s=self.settings.run_store_margin_s)
        ticket = await self._write(
            lambda s: service.claim_resume(s, run_id=run_id, deadline_at=deadline_at)
        )
        run = ticket.run
        try:
            workflow = self.runner.workflow(
                version=run.version, digest=ticket.digest, definition=ticket.definition
            )
        except BaseException:
            await self._give_back(run_id, "the version no longer compiles on this server")
            raise
        attrs = {"reason": "resume", "attempt": run.attempt, "original_reason": run.reason}
        persist = self._persister(run_id) if asynchronous else None
        steps = RunSteps(self.shared, saved=ticket.steps, persist=persist, remote=self.remote)
        job = self._finish_in_background(
            run_id,
            workflow,
            ticket.inputs,
            steps,
            deadline_s=deadline_s,
            attrs=attrs,
            resumed=True,
        )
        if asynchronous:
            self._spawn(job)
            return run
        return await job

    # -- the run queue (Redis) -----------------------------------------------------------------
    async def _enqueue(
        self,
        plan: RunPlan,
        inputs: Mapping[str, Any],
        *,
        run_id: str,
        claim: idempotency.Claim | None,
    ) -> RunPublic:
        """Store the run ``queued``, then put it on the queue; answered only once both hold.
        Stored first, so a worker never reads a message whose run is not there yet. When the
        queue cannot take it, the run is stored failed (resumable, never left ``queued``), the
        idempotency key is freed, and the client gets a 503."""
        assert self.queue is not None
        if self.redis is not None and not self.redis.up:
            # The breaker is open: refuse before storing anything.
            await self.redis.call("queue.check", lambda c: c.ping())
        # Queued time counts: a run that no worker picks up is failed by the sweep at the end.
        deadline_s = 2 * self.settings.async_run_deadline_s
        deadline_at = service.deadline_after(deadline_s, margin_s=self.settings.run_store_margin_s)

        def accept(session: Session) -> RunPublic:
            public = service.start_run(
                session,
                plan=plan,
                run_id=run_id,
                inputs=inputs,
                deadline_at=deadline_at,
                status="queued",
            )
            if claim is not None:
                idempotency.complete(session, claim=claim, response=public)
            return public

        accepted = await self._write(accept)
        try:
            queue = self.queue
            await self._queue_call("queue.enqueue", lambda: queue.enqueue(run_id))
        except RedisUnavailable:
            error = "not queued: Redis was unavailable when the run was submitted"

            def refuse(session: Session) -> service.EndedRun | None:
                if claim is not None:
                    idempotency.withdraw(session, claim=claim, run_id=run_id)
                return service.fail_unstarted(session, run_id=run_id, error=error)

            ended = await self._write(refuse)
            if self.metrics is not None:
                self.metrics.observe_assignment(accepted)
                if ended is not None:
                    self.metrics.observe_failed_end(**ended._asdict())
            raise
        if self.metrics is not None:
            self.metrics.observe_assignment(accepted)  # its end is counted by the worker
        return accepted

    async def _queue_call(self, operation: str, work: Callable[[], Awaitable[T]]) -> T:
        """A queue operation through the Redis link's breaker (timeout, error count, 503)."""
        assert self.redis is not None

        async def call(_client: object) -> T:
            return await work()

        return await self.redis.call(operation, call)

    async def execute_queued(self, delivery: Delivery) -> None:
        """A worker's handler: run a queued run to its end (or on from its completed steps when
        ``delivery`` is a reclaimed one). Returns when the run is stored (the message is then
        acknowledged); raises ``Fatal`` when the run failed for good (dead-lettered, with its
        error; it stays resumable)."""
        run_id = delivery.run_id
        deadline_s = self.settings.async_run_deadline_s
        deadline_at = service.deadline_after(deadline_s, margin_s=self.settings.run_store_margin_s)
        ticket = await self._write(
            lambda s: service.claim_queued(
                s, run_id=run_id, deadline_at=deadline_at, reclaim=delivery.deliveries > 1
            )
        )
        if ticket is None:
            log.info("run %s has nothing left to run (ended or unknown); acknowledged", run_id)
            return
        run = ticket.run
        saved = dict(ticket.steps)
        if self.remote is not None:
            # Unavailable: the store's copy (steps persisted while Redis was away) serves.
            with contextlib.suppress(RedisUnavailable):
                saved.update(await self.remote.load(run_id))
        workflow = self.runner.workflow(
            version=run.version, digest=ticket.digest, definition=ticket.definition
        )
        steps = RunSteps(
            self.shared,
            saved=saved,
            persist=self._persister(run_id),
            remote=self.remote,
            run_id=run_id,
        )
        attrs = {"reason": run.reason, "deliveries": delivery.deliveries}
        finished = await self._finish_in_background(
            run_id,
            workflow,
            ticket.inputs,
            steps,
            deadline_s=deadline_s,
            attrs=attrs,
            give_back_on_cancel=False,
            # Taken over from a worker that stopped: read the steps it completed.
            resumed=bool(saved),
        )
        if finished.status == "succeeded":
            if self.remote is not None:
                with contextlib.suppress(RedisUnavailable):
                    await self.remote.forget(run_id)  # expires anyway
            return
        raise Fatal(finished.error or "the run failed")

    async def dead_lettered(self, delivery: Delivery, error: str) -> None:
        """A queued run went to the dead-letter stream: it failed (stored already), or its
        deliveries ran out (stored failed now, with why). Either way it can be resumed."""
        ended = await self._write(
            lambda s: service.fail_unstarted(s, run_id=delivery.run_id, error=error)
        )
        if self.metrics is not None:
            self.metrics.dead_letters.inc()
            if ended is not None:
                self.metrics.observe_failed_end(**ended._asdict())

    # -- helpers ------------------------------------------------------------------------------
    def _workflow(self, plan: RunPlan) -> engine.Workflow:
        return self.runner.workflow(
            version=plan.version, digest=plan.digest, definition=plan.definition
        )

    @staticmethod
    def _invalid_input(plan: RunPlan, exc: engine.InputBindingError) -> InvalidInput:
        return InvalidInput(
            f"the input does not fit {plan.workflow} {plan.version}: {exc}", problems=exc.problems
        )

    async def _engine_run(
        self, workflow: engine.Workflow, inputs: Mapping[str, Any], *, plan: RunPlan, **kw: Any
    ) -> engine.RunResult:
        try:
            return await self.runner.run(workflow, inputs, **kw)
        except engine.InputBindingError as exc:
            raise self._invalid_input(plan, exc) from exc

    async def _write(self, work: Callable[[Session], T]) -> T:
        try:
            return await self.writer.submit(work)
        except WriterClosed as exc:
            raise Unavailable("the server is shutting down; retry the request") from exc

    def _persister(self, run_id: str) -> Callable[[str, str], object]:
        def persist(key: str, value: str) -> object:
            row = RunStepRow(run_id=run_id, key=key, value=value)
            try:
                return self.writer.post(lambda s: s.merge(row))
            except WriterClosed:  # stopping: the run is stored as interrupted anyway
                return None

        return persist

    def _spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        if self._closing:
            job.close()
            raise Unavailable("the server is shutting down; retry the request")
        task: asyncio.Task[None] = asyncio.create_task(self._guarded(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guarded(job: Coroutine[Any, Any, Any]) -> None:
        try:
            await job
        except asyncio.CancelledError:
            pass  # stopped at shutdown; stored as interrupted by the job itself
        except Exception:
            log.exception("a background run could not be stored")

    async def _finish_in_background(
        self,
        run_id: str,
        workflow: engine.Workflow,
        inputs: Mapping[str, Any],
        steps: RunSteps,
        give_back_on_cancel: bool = True,
        **kw: Any,
    ) -> RunPublic:
        """Run an accepted (or resumed) run to its end and store it; when it is stopped or the
        engine breaks, store it failed (resumable) rather than leave it running."""
        try:
            result = await self.runner.run(workflow, inputs, cache=steps, run_id=run_id, **kw)
        except asyncio.CancelledError:
            if give_back_on_cancel:
                with anyio.CancelScope(shield=True):
                    await self._give_back(run_id, service.INTERRUPTED, steps=steps)
            # Else a queued run: it stays running, and its message is handed to another
            # worker after the visibility timeout, which goes on from its completed steps.
            raise
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._give_back(run_id, f"the run broke: {exc!r}", steps=steps)
            raise
        finished = await self._write(
            lambda s: service.finish_run(
                s, run_id=run_id, result=result, steps=_to_keep(steps, result)
            )
        )
        if self.metrics is not None:
            # Attempt 1 is an accepted async run's first end; a later attempt is a resume.
            self.metrics.observe_run(finished, result, first_end=finished.attempt <= 1)
        return finished

    async def _give_back(self, run_id: str, error: str, *, steps: RunSteps | None = None) -> None:
        saved = steps.new if steps is not None and not steps.persisted else {}
        try:
            ended = await self.writer.submit(
                lambda s: service.interrupt_run(s, run_id=run_id, error=error, steps=saved)
            )
        except Exception:
            log.exception("could not store run %s as failed; the sweep will", run_id)
            return  # counted by the sweep that fails it
        if ended is not None and self.metrics is not None:
            self.metrics.observe_failed_end(**ended._asdict())


def _to_keep(steps: RunSteps, result: engine.RunResult) -> dict[str, str]:
    """The steps to store with a finished run: a failed run's, unless they were stored as they
    completed; a succeeded run needs none (there is nothing left to resume)."""
    if result.status != "failed" or steps.persisted:
        return {}
    return steps.new
