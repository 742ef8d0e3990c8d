"""Executing runs: ``POST /v1/run`` from plan to stored answer, async runs, resumes.

``Runs`` is the process's run machinery, opened by ``runtime``: the compiled workflows, the
batch writer (every run's writes, so concurrent runs share transactions), the shared step
cache, the async runs in flight, the sweep that fails runs orphaned by a stopped process.

* ``submit``: one call for ``POST /v1/run``: plan the version, claim the ``Idempotency-Key``
  (or replay its answer), run, record; a request that fails before its answer frees the key.
* Sync: run, then store the run and its trace; the response is built only after the commit, so
  every run that got a response can be read back.
* Async: check the input, store the run ``running``, then answer 202; the run goes on in a
  task, its steps stored as they complete (resumable); with Redis it is queued (``queued``).
* Resume: a failed run runs again under its run id with its completed steps preloaded.

Metrics move in ``metrics.after_commit``, once the unit of work that writes what they count is
committed. On shutdown, async runs get ``shutdown_grace_s`` to finish; the rest are stored as
interrupted (resumable), and the writer drains before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import timedelta
from functools import partial
from typing import Any, Literal, TypeVar

import anyio
from sqlmodel import Session

import engine
from control_plane.errors import Unavailable
from control_plane.metrics import Metrics, after_commit
from control_plane.queue import RunQueue
from control_plane.registry.cache import RegistryCache
from control_plane.runs import idempotency, orphans, planning, service
from control_plane.runs.background import guarded
from control_plane.runs.claimed import claimed_steps, forget_claimed
from control_plane.runs.compiler import Compiler
from control_plane.runs.evaluations.dispatch import EvaluationDispatch
from control_plane.runs.limits import attempt_limits
from control_plane.runs.planning import RunPlan
from control_plane.runs.progress import Progress
from control_plane.runs.queued import QueuedRuns
from control_plane.runs.remote_steps import RemoteSteps
from control_plane.runs.schemas import BudgetRequest, RunPublic, RunRequest, Submitted
from control_plane.runs.shadow.dispatch import ShadowDispatch
from control_plane.runs.signals import RunSignals
from control_plane.runs.steps import RunSteps, SharedSteps, step_persister
from control_plane.runs.writer import BatchWriter, WriterClosed
from control_plane.settings import Settings
from control_plane.store.db import SessionFactory, UnitGate, run_unit
from control_plane.store.redis import RedisLink

__all__ = ["Runs"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Runs:
    def __init__(
        self,
        *,
        compiler: Compiler,
        session_factory: SessionFactory,
        settings: Settings,
        metrics: Metrics,
        redis: RedisLink | None = None,
        queue: RunQueue | None = None,
    ) -> None:
        self.compiler = compiler
        self.settings = settings
        self.metrics = metrics
        self.redis = redis
        # Steps shared with every replica and worker through Redis, when there is one.
        self.remote = RemoteSteps(redis) if redis is not None else None
        # The request path's units of work (claims here, the routes' through api.deps): one
        # bound per process, so a saturated store answers 503 at once.
        self.units = UnitGate(session_factory, limit=settings.db_admission_limit)
        self._factory = session_factory
        self.writer = BatchWriter(session_factory)
        self.shared = SharedSteps()
        self.signals = RunSignals(redis)  # wakes a run's event streams, on every replica
        # With a queue, async runs go to the workers, and a worker's runs come from it.
        self.queued = QueuedRuns(self, queue) if queue is not None else None
        self.shadows = ShadowDispatch(self)  # mirrored requests, run after their answer
        self.evaluations = EvaluationDispatch(self, compiler.engine.providers)  # after answers
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.shadows.start()
        await self.evaluations.start()
        await self.sweep(expire=False)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="rollgraph-orphan-sweep")

    async def sweep(self, *, expire: bool = True) -> int:
        """Fail the runs orphaned by a stopped process (they become resumable), queue stranded
        runs, and delete the runs past retention (``orphans``)."""
        count = await orphans.sweep(self, self._factory, expire=expire)
        await self.evaluations.requeue_due()  # succeeded runs a stopped process left unscored
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
        await self.shadows.aclose()
        await self.evaluations.aclose()
        if self._tasks:
            grace = self.settings.shutdown_grace_s
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await anyio.to_thread.run_sync(self.writer.close)
        await self.signals.aclose()

    # -- POST /v1/run -------------------------------------------------------------------------
    async def submit(
        self,
        request: RunRequest,
        *,
        registry: RegistryCache,
        principal: str,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """Plan, claim the idempotency key (or replay its answer), run and record."""
        self.writer.admit()  # a writer that is not keeping up takes no new runs
        if idempotency_key is None:
            return await self._plan_and_run(request, registry, claim=None)
        claimed = await idempotency.acquire(
            self.units,  # units of their own: claims never wait behind, or fail with, a batch
            principal=principal,
            key=idempotency_key,
            request=request,
            hold=self._claim_hold(),
        )
        if isinstance(claimed, RunPublic):
            return Submitted(claimed, replayed=True)
        claim = claimed
        try:
            # Renewed while the run executes (past the gate: a live run keeps its claim when the
            # store is saturated): a takeover waits for a dead request, not a live one.
            renew = partial(run_unit, self._factory)
            async with idempotency.keep(renew, claim, lease=self._claim_hold()):
                return await self._plan_and_run(request, registry, claim=claim)
        except BaseException:
            # No response was stored: free the key so that the client can retry with it.
            # Shielded, so that a cancelled request (client gone) still releases it.
            with anyio.CancelScope(shield=True):
                try:
                    await self.units(partial(idempotency.release, claim=claim))
                except Exception:
                    log.exception("could not release idempotency claim %s", claim.id)
            raise

    def _claim_hold(self) -> timedelta:
        return timedelta(seconds=self.settings.idempotency_lease_s)

    async def _plan_and_run(
        self, request: RunRequest, registry: RegistryCache, *, claim: idempotency.Claim | None
    ) -> Submitted:
        plan = await planning.plan(registry, request=request)
        way = self.run_async if request.mode == "async" else self.run_sync
        run = await way(plan, request.input, claim=claim)
        evaluated = run.status == "succeeded" and bool(self.workflow_of(plan).spec.evaluators)
        if plan.shadow is None and not evaluated:
            return Submitted(run)
        # Mirrored and evaluated once the answer was sent (the route's background task), so that
        # no such work can start while the answer is on its way; joining a queue never waits.
        return Submitted(run, after=partial(self._after_answer, plan, request.input, run))

    def _after_answer(self, plan: RunPlan, inputs: Mapping[str, Any], run: RunPublic) -> None:
        self.shadows.offer(plan, inputs, served=run)
        if run.status == "succeeded":
            self.evaluations.offer(self.workflow_of(plan), run.run_id)

    # -- the ways to run ----------------------------------------------------------------------
    async def run_sync(
        self, plan: RunPlan, inputs: Mapping[str, Any], *, claim: idempotency.Claim | None
    ) -> RunPublic:
        workflow = self.workflow_of(plan)
        steps, carried = await claimed_steps(self.shared, self.remote, claim)
        try:
            result = await self.compiler.run(
                workflow,
                inputs,
                run_id=claim.run_id if claim is not None else None,
                attrs=plan.attrs,
                cache=steps,
                taken_over=carried,
                **attempt_limits(workflow, plan.limits, self.settings.run_deadline_s),
            )
        except engine.InputBindingError as exc:
            raise planning.invalid_input(plan, exc) from exc

        def record(session: Session) -> RunPublic:
            public = service.record_run(
                session, plan=plan, result=result, inputs=inputs, steps=steps.to_keep(result)
            )
            if claim is not None:
                idempotency.complete(session, claim=claim, response=public)
            self.evaluations.due(session, workflow, public)
            after_commit(session, partial(self.metrics.observe_assignment, public))
            after_commit(session, partial(self.metrics.observe_run, public, result, first_end=True))
            return public

        recorded = await self.write(record)
        await forget_claimed(self.remote, claim)
        return recorded

    async def run_async(
        self, plan: RunPlan, inputs: Mapping[str, Any], *, claim: idempotency.Claim | None
    ) -> RunPublic:
        workflow = self.workflow_of(plan)
        try:
            workflow.bind_inputs(inputs)  # a bad input is a 422 now, not a failed run later
        except engine.InputBindingError as exc:
            raise planning.invalid_input(plan, exc) from exc
        run_id = claim.run_id if claim is not None else engine.new_run_id()
        if self.queued is not None:
            return await self.queued.enqueue(plan, inputs, run_id=run_id, claim=claim)
        deadline_s = self.settings.async_run_deadline_s
        accepted = await self.write(
            partial(self.accept, plan, inputs, run_id=run_id, claim=claim, deadline_s=deadline_s)
        )
        steps = RunSteps(self.shared, persist=self.persister(run_id), remote=self.remote)
        limits = attempt_limits(workflow, plan.limits, deadline_s)
        job = self.finish(run_id, workflow, inputs, steps, attrs=plan.attrs, **limits)
        self._spawn(job)
        return accepted

    def accept(
        self,
        plan: RunPlan,
        inputs: Mapping[str, Any],
        session: Session,
        *,
        run_id: str,
        claim: idempotency.Claim | None,
        deadline_s: float,
        status: Literal["running", "queued"] = "running",
        count: bool = True,
        traceparent: str | None = None,
        shadow_of: str | None = None,
    ) -> RunPublic:
        """Unit of work: store an accepted async run; ``count``: its assignment is counted when
        this commits (its end is counted when it ends)."""
        deadline_at = service.deadline_after(deadline_s, margin_s=self.settings.run_store_margin_s)
        public = service.start_run(
            session,
            plan=plan,
            run_id=run_id,
            inputs=inputs,
            deadline_at=deadline_at,
            status=status,
            traceparent=traceparent,
            shadow_of=shadow_of,
        )
        if claim is not None:
            idempotency.complete(session, claim=claim, response=public)
        if count:
            after_commit(session, partial(self.metrics.observe_assignment, public))
        return public

    async def resume(
        self, run_id: str, *, asynchronous: bool, budget: BudgetRequest | None = None
    ) -> RunPublic:
        """Run a failed run again; ``budget``: limits that stand instead of the run's."""
        deadline_s = (
            self.settings.async_run_deadline_s if asynchronous else self.settings.run_deadline_s
        )
        deadline_at = service.deadline_after(deadline_s, margin_s=self.settings.run_store_margin_s)
        ticket = await self.write(
            lambda s: service.claim_resume(s, run_id=run_id, deadline_at=deadline_at)
        )
        run = ticket.run
        try:
            workflow = self.compiler.workflow(
                version=run.version, digest=ticket.digest, definition=ticket.definition
            )
        except BaseException:
            await self.give_back(run_id, "the version no longer compiles on this server")
            raise
        attrs = {"reason": "resume", "attempt": run.attempt, "original_reason": run.reason}
        persist = self.persister(run_id) if asynchronous else None
        steps = RunSteps(self.shared, saved=ticket.steps, persist=persist, remote=self.remote)
        kw = attempt_limits(workflow, ticket.limits, deadline_s, budget, run_attempt=run.attempt)
        job = self.finish(run_id, workflow, ticket.inputs, steps, attrs=attrs, resumed=True, **kw)
        if asynchronous:
            self._spawn(job)
            return run
        return await job

    # -- what every way shares ----------------------------------------------------------------
    def workflow_of(self, plan: RunPlan) -> engine.Workflow:
        return self.compiled(version=plan.version, digest=plan.digest, definition=plan.definition)

    def compiled(self, *, version: str, digest: str, definition: str) -> engine.Workflow:
        return self.compiler.workflow(version=version, digest=digest, definition=definition)

    async def write(self, work: Callable[[Session], T]) -> T:
        """``work`` in the writer's next batch; its result once committed."""
        try:
            return await self.writer.submit(work)
        except WriterClosed as exc:
            raise Unavailable("the server is shutting down; retry the request") from exc

    def count_failed_ends(self, session: Session, ended: Iterable[service.EndedRun]) -> None:
        """Count runs this unit of work ended without a result, once it commits."""
        for run in ended:
            after_commit(session, partial(self.metrics.observe_failed_end, **run._asdict()))

    def persister(self, run_id: str) -> Callable[[str, str], object]:
        return step_persister(self.writer, run_id)

    def _spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        if self._closing:
            job.close()
            raise Unavailable("the server is shutting down; retry the request")
        task: asyncio.Task[None] = asyncio.create_task(guarded(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finish(
        self,
        run_id: str,
        workflow: engine.Workflow,
        inputs: Mapping[str, Any],
        steps: RunSteps,
        give_back_on_cancel: bool = True,
        shadow: bool = False,
        **kw: Any,
    ) -> RunPublic:
        """Run an accepted or resumed run to its end and store it (stopped or broken: failed)."""
        interval = self.settings.progress_interval_s  # its steps stored, and signalled, meanwhile
        progress = Progress(self.writer.post, run_id, interval, self.signals)
        try:
            result = await self.compiler.run(
                workflow, inputs, cache=steps, run_id=run_id, watch=progress.watch, **kw
            )
        except asyncio.CancelledError:
            if give_back_on_cancel:
                with anyio.CancelScope(shield=True):
                    await self.give_back(run_id, service.INTERRUPTED, steps=steps)
            # Else a queued run: it stays running, and its message is handed to another
            # worker after the visibility timeout, which goes on from its completed steps.
            raise
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self.give_back(run_id, f"the run broke: {exc!r}", steps=steps)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await progress.aclose()

        def store(session: Session) -> RunPublic:
            finished = service.finish_run(
                session, run_id=run_id, result=result, steps=steps.to_keep(result)
            )
            # A shadow run in its own metrics only. Attempt 1 is an accepted async run's first
            # end; a later attempt is a resume.
            first_end = finished.attempt <= 1
            after_commit(session, partial(self.signals.changed, run_id))
            self.evaluations.due(session, workflow, finished)
            observe = self.metrics.shadow.observe_run if shadow else self.metrics.observe_run
            after_commit(session, partial(observe, finished, result, first_end=first_end))
            return finished

        finished = await self.write(store)
        if finished.status == "succeeded":
            self.evaluations.offer(workflow, run_id)
        return finished

    async def give_back(self, run_id: str, error: str, *, steps: RunSteps | None = None) -> None:
        saved = steps.new if steps is not None and not steps.persisted else {}

        def fail(session: Session) -> None:
            ended = service.interrupt_run(session, run_id=run_id, error=error, steps=saved)
            self.count_failed_ends(session, [ended] if ended is not None else [])

        try:
            await self.writer.submit(fail)
        except Exception:
            log.exception("could not store run %s as failed; the sweep will", run_id)
