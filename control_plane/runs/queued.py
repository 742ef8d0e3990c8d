"""Runs through the Redis run queue: the producer side (a server stores an async run ``queued``
and puts it on the queue) and the consumer side (a ``rollgraph worker`` runs what it takes
from the queue, with its steps written to Redis as they complete, so a worker that takes over
a dead worker's run goes on from those steps).

Delivery is at least once; the store's conditional updates (``service.claim_queued``) make a
run start once per delivery and end once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from sqlmodel import Session

import engine
from control_plane.metrics import Metrics, after_commit
from control_plane.queue import Delivery, Fatal, RunQueue
from control_plane.queue.pressure import QueuePressure
from control_plane.runs import idempotency, outbox, service
from control_plane.runs.compiler import Compiler
from control_plane.runs.limits import attempt_limits
from control_plane.runs.planning import RunPlan
from control_plane.runs.remote_steps import RemoteSteps
from control_plane.runs.schemas import RunPublic
from control_plane.runs.steps import RunSteps, SharedSteps
from control_plane.runs.writer import BatchWriter, WriterClosed
from control_plane.settings import Settings
from control_plane.store.redis import RedisLink, RedisUnavailable

__all__ = ["QueuedRuns", "RunHost"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RunHost(Protocol):
    """What queued runs use of the process's run machinery (``execution.Runs`` is one): the
    queue shares its writer, step caches and finisher rather than keeping copies."""

    compiler: Compiler
    settings: Settings
    metrics: Metrics
    redis: RedisLink | None
    remote: RemoteSteps | None
    shared: SharedSteps
    writer: BatchWriter

    async def write(self, work: Callable[[Session], T]) -> T: ...

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
    ) -> RunPublic: ...

    def count_failed_ends(self, session: Session, ended: Iterable[service.EndedRun]) -> None: ...

    def persister(self, run_id: str) -> Callable[[str, str], object]: ...

    def finish(
        self,
        run_id: str,
        workflow: engine.Workflow,
        inputs: Mapping[str, Any],
        steps: RunSteps,
        give_back_on_cancel: bool = True,
        shadow: bool = False,
        **kw: Any,
    ) -> Coroutine[Any, Any, RunPublic]: ...


class QueuedRuns:
    def __init__(self, runs: RunHost, queue: RunQueue) -> None:
        self._runs = runs
        self.queue = queue
        self.pressure = QueuePressure(
            partial(self._call, "queue.stats", queue.stats),
            max_depth=runs.settings.queue_max_depth,
            max_wait_s=runs.settings.queue_max_wait_s,
        )

    # -- producer (servers) -------------------------------------------------------------------
    async def enqueue(
        self,
        plan: RunPlan,
        inputs: Mapping[str, Any],
        *,
        run_id: str,
        claim: idempotency.Claim | None,
        shadow_of: str | None = None,
    ) -> RunPublic:
        """Store the run ``queued``, then put it on the queue; answered only once both hold.
        Stored first, so a worker never reads a message whose run is not there yet. When the
        queue cannot take it, the run is deleted (it never ran and was never answered), the
        idempotency key is freed, and the client gets a 503 to retry; the run is counted only
        once it is queued. A queue past its depth or wait limit refuses it (429 ``queue_full``)
        before anything is stored."""
        runs = self._runs
        redis = runs.redis
        if redis is not None and not redis.up:
            # The breaker is open: refuse before storing anything.
            await redis.call("queue.check", lambda c: c.ping())
        await self.pressure.check()
        tracing = runs.compiler.tracing  # the worker's spans continue this request's trace
        parent = tracing.traceparent() if tracing is not None else None
        # Queued time counts: a run that no worker picks up is failed by the sweep at the end.
        accepted = await runs.write(
            partial(
                runs.accept,
                plan,
                inputs,
                run_id=run_id,
                claim=claim,
                deadline_s=2 * runs.settings.async_run_deadline_s,
                status="queued",
                count=False,
                traceparent=parent,  # stored too: the sweep may have to queue it again
                shadow_of=shadow_of,
            )
        )
        try:
            await self._call(
                "queue.enqueue", lambda: self.queue.enqueue(run_id, traceparent=parent)
            )
            # The outbox's mark, not awaited: if it is lost, the sweep queues the run again
            # and the duplicate message finds nothing to run.
            with contextlib.suppress(WriterClosed):
                runs.writer.post(partial(outbox.mark_enqueued, run_ids=[run_id]))
        except RedisUnavailable:

            def refuse(session: Session) -> None:
                if claim is not None:
                    idempotency.withdraw(session, claim=claim, run_id=run_id)
                outbox.discard_unqueued(session, run_id=run_id)

            await runs.write(refuse)
            raise
        if shadow_of is None:  # a shadow run routes nothing: no assignment to count
            runs.metrics.observe_assignment(accepted)  # queued: its end counted by the worker
        return accepted

    async def requeue_stranded(self) -> int:
        """Put back on the queue the runs a server stored ``queued`` and died before queueing
        (``outbox``); how many. Called by the sweep, in every process that has the queue."""
        runs = self._runs
        grace = runs.settings.queue_visibility_timeout_s
        found = await runs.write(partial(outbox.stranded, grace_s=grace))
        for run_id, parent in found:
            # With the submitter's trace context, as the submission would have queued it.
            queue_it = partial(self.queue.enqueue, run_id, traceparent=parent)
            await self._call("queue.enqueue", queue_it)
        ids = [run_id for run_id, _ in found]
        if ids:
            await runs.write(partial(outbox.mark_enqueued, run_ids=ids))
            log.warning("queued %d run(s) stored but never queued (a server stopped)", len(ids))
        return len(ids)

    async def _call(self, operation: str, work: Callable[[], Awaitable[T]]) -> T:
        """A queue operation through the Redis link's breaker (timeout, error count, 503)."""
        redis = self._runs.redis
        assert redis is not None  # a queue lives on the process's Redis link

        async def call(_client: object) -> T:
            return await work()

        return await redis.call(operation, call)

    # -- consumer (workers) -------------------------------------------------------------------
    async def execute(self, delivery: Delivery) -> None:
        """A worker's handler: run a queued run to its end (or on from its completed steps when
        ``delivery`` is a reclaimed one). Returns when the run is stored (the message is then
        acknowledged); raises ``Fatal`` when the run failed for good (dead-lettered, with its
        error; it stays resumable)."""
        runs = self._runs
        run_id = delivery.run_id
        deadline_s = runs.settings.async_run_deadline_s
        deadline_at = service.deadline_after(deadline_s, margin_s=runs.settings.run_store_margin_s)
        ticket = await runs.write(
            lambda s: service.claim_queued(
                s, run_id=run_id, deadline_at=deadline_at, reclaim=delivery.deliveries > 1
            )
        )
        if ticket is None:
            log.info("run %s has nothing left to run (ended or unknown); acknowledged", run_id)
            return
        run = ticket.run
        saved = dict(ticket.steps)
        if runs.remote is not None:
            # Unavailable: the store's copy (steps persisted while Redis was away) serves.
            with contextlib.suppress(RedisUnavailable):
                saved.update(await runs.remote.load(run_id))
        workflow = runs.compiler.workflow(
            version=run.version, digest=ticket.digest, definition=ticket.definition
        )
        steps = RunSteps(
            runs.shared,
            saved=saved,
            persist=runs.persister(run_id),
            remote=runs.remote,
            run_id=run_id,
        )
        attrs = {"reason": run.reason, "deliveries": delivery.deliveries}
        tracing = runs.compiler.tracing  # the run's spans continue the submitter's trace
        parent = delivery.traceparent or ticket.traceparent  # a message from before 0013: none
        with tracing.continued(parent) if tracing else contextlib.nullcontext():
            finished = await runs.finish(
                run_id,
                workflow,
                ticket.inputs,
                steps,
                attrs=attrs,
                give_back_on_cancel=False,
                shadow=run.shadow_of is not None,
                # Taken over from a worker that stopped: go on from the steps it completed, and
                # count their cost (billed by that worker, never reported) as this run's.
                taken_over=bool(saved),
                **attempt_limits(workflow, ticket.limits, deadline_s, run_attempt=run.attempt),
            )
        if finished.status == "succeeded":
            if runs.remote is not None:
                with contextlib.suppress(RedisUnavailable):
                    await runs.remote.forget(run_id)  # expires anyway
            return
        raise Fatal(finished.error or "the run failed")

    async def dead_lettered(self, delivery: Delivery, error: str) -> None:
        """A queued run went to the dead-letter stream: it failed (stored already), or its
        deliveries ran out (stored failed now, with why). Either way it can be resumed."""
        runs = self._runs

        def fail(session: Session) -> None:
            ended = service.fail_unstarted(session, run_id=delivery.run_id, error=error)
            after_commit(session, runs.metrics.dead_letters.inc)
            runs.count_failed_ends(session, [ended] if ended is not None else [])

        await runs.write(fail)
