"""Running mirrored requests on the shadow candidate, off the request path.

The request path does one thing: ``offer`` puts the served run's plan on a bounded asyncio queue
without waiting (``put_nowait``), once the answer was sent (the route's background task). A full
queue drops the shadow run, counted (``queue_full``); the served request never waits for a
shadow and never fails because of one. A few worker tasks take the queue:

1. the cost cap: what the label's shadow runs of the last hour cost (``spend``); at the cap the
   run is dropped (``cost_cap``), below it the run gets the rest as its budget, so running
   shadows cannot overshoot the cap by more than one step's estimate each;
2. with a Redis run queue, the shadow run is stored ``queued`` and put on it (the workers run
   it, like any queued run); a queue past its limits drops it (``queue_full``);
3. without one, it runs here like a sync run, and is stored when it ended, in a batch with
   other ended shadow runs (``recorder``), so that shadows rarely hold up a served run's commit.

Either way the shadow run is a run (stored, traced, resumable) with ``shadow_of`` naming the
served run, reason ``shadow``, no experiment, and counted in ``metrics.shadow`` only.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlmodel import Session

import engine
from control_plane.errors import Unavailable
from control_plane.metrics.shadow import DropReason
from control_plane.queue.pressure import QueueFull
from control_plane.runs.evaluations.dispatch import EvaluationDispatch
from control_plane.runs.limits import attempt_limits
from control_plane.runs.planning import RunPlan
from control_plane.runs.queued import QueuedRuns, RunHost
from control_plane.runs.schemas import RunPublic
from control_plane.runs.shadow.recorder import EndedShadow, ShadowRecorder
from control_plane.runs.shadow.spend import Spend
from control_plane.runs.steps import RunSteps
from control_plane.store.db import UnitGate
from control_plane.store.redis import RedisUnavailable

__all__ = ["ShadowDispatch", "ShadowHost", "shadow_plan"]

log = logging.getLogger(__name__)

SHADOW_REASON = "shadow"


class ShadowHost(RunHost, Protocol):
    """What shadow runs use of the process's run machinery (``execution.Runs`` is one)."""

    queued: QueuedRuns | None
    units: UnitGate
    evaluations: EvaluationDispatch

    def workflow_of(self, plan: RunPlan) -> engine.Workflow: ...


@dataclass(frozen=True, slots=True)
class _Mirror:
    plan: RunPlan  # the served request's plan, with its shadow candidate
    inputs: Mapping[str, Any]
    served_run_id: str


def shadow_plan(served: RunPlan, *, served_run_id: str, budget_usd: float) -> RunPlan:
    """The shadow run's plan: the candidate's version on the served request's label and user,
    within ``budget_usd`` (the rest of the hour's cap), routed by nothing."""
    shadow = served.shadow
    assert shadow is not None
    return RunPlan(
        workflow=served.workflow,
        version=shadow.version,
        digest=shadow.digest,
        definition=shadow.definition,
        label=served.label,
        user_id=served.user_id,
        reason=SHADOW_REASON,
        attrs={"reason": SHADOW_REASON, "label": served.label, "shadow_of": served_run_id},
        limits=_limits(served, budget_usd),
    )


def _limits(served: RunPlan, budget_usd: float) -> dict[str, Any]:
    # The served request's own limits, its cost limit lowered to what the cap has left.
    limits = dict(served.limits or {})
    budget = dict(limits.get("budget") or {})
    asked = budget.get("max_cost_usd")
    budget["max_cost_usd"] = budget_usd if asked is None else min(float(asked), budget_usd)
    limits["budget"] = budget
    return limits


class ShadowDispatch:
    """The bounded queue of mirrored requests and the workers that run them."""

    def __init__(self, runs: ShadowHost) -> None:
        self._runs = runs
        self._capacity = runs.settings.shadow_queue_size
        self._workers = runs.settings.shadow_workers
        self._queue: asyncio.Queue[_Mirror] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spend = Spend(runs.units)
        self._recorder = ShadowRecorder(
            runs.write, runs.metrics, self._drop, stored=self._stored, due=self._due
        )

    async def start(self) -> None:
        # Made on the running loop: an asyncio queue belongs to the loop that uses it.
        self._queue = asyncio.Queue(maxsize=self._capacity)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"rollgraph-shadow-{i}")
            for i in range(self._workers)
        ]

    async def aclose(self) -> None:
        """Stop taking mirrored requests; those still queued and those in flight are dropped
        (never stored: only a pair missing in the comparison), the ended ones are stored."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks = []
        await self._recorder.aclose()

    def offer(self, plan: RunPlan, inputs: Mapping[str, Any], *, served: RunPublic) -> None:
        """On the request path: queue the mirror of ``served`` when ``plan`` has a shadow
        candidate, without waiting; a full (or not started) queue drops it, counted."""
        if plan.shadow is None:
            return
        mirror = _Mirror(plan, inputs, served.run_id)
        try:
            if self._queue is None:
                raise asyncio.QueueFull
            self._queue.put_nowait(mirror)
        except asyncio.QueueFull:
            self._drop(plan, "queue_full")

    async def drain(self) -> None:
        """Wait until every queued mirror was run and stored, or dropped (tests, benchmarks)."""
        if self._queue is not None:
            await self._queue.join()
        await self._recorder.flush()

    def _stored(self, plan: RunPlan, run_id: str) -> None:
        # Scored like the served run, so the paired comparison finds eval.* on both.
        self._runs.evaluations.offer(self._runs.workflow_of(plan), run_id)

    def _due(self, session: Session, plan: RunPlan, run: RunPublic) -> None:
        self._runs.evaluations.due(session, self._runs.workflow_of(plan), run)

    def _drop(self, plan: RunPlan, reason: DropReason) -> None:
        self._runs.metrics.shadow.observe_drop(workflow=plan.workflow, reason=reason)

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            mirror = await self._queue.get()
            try:
                await self._mirror(mirror)
            except asyncio.CancelledError:
                raise
            except Exception:  # a shadow run must never take its worker down with it
                log.exception("shadow run of %s failed to start", mirror.served_run_id)
            finally:
                self._queue.task_done()

    async def _mirror(self, mirror: _Mirror) -> None:
        runs, plan = self._runs, mirror.plan
        shadow = plan.shadow
        assert shadow is not None
        assert plan.label is not None
        try:
            spent = await self._spend.last_hour(plan)
        except Unavailable:
            self._drop(plan, "unavailable")
            return
        rest = shadow.max_cost_usd_per_hour - spent
        if rest <= 0:
            self._drop(plan, "cost_cap")
            return
        # A copy: the shadow run can never change what the served run (or its caller) sees.
        inputs = copy.deepcopy(dict(mirror.inputs))
        run_plan = shadow_plan(plan, served_run_id=mirror.served_run_id, budget_usd=rest)
        try:  # before anything is stored or queued: a candidate may take other inputs
            runs.workflow_of(run_plan).bind_inputs(inputs)
        except engine.InputBindingError:
            self._drop(plan, "input_mismatch")
            return
        run_id = engine.new_run_id()
        if runs.queued is not None:
            await self._enqueue(runs.queued, run_plan, inputs, run_id, mirror.served_run_id)
            return
        await self._run_here(run_plan, inputs, run_id, mirror.served_run_id)

    async def _enqueue(
        self,
        queued: QueuedRuns,
        plan: RunPlan,
        inputs: dict[str, Any],
        run_id: str,
        served_run_id: str,
    ) -> None:
        try:
            await queued.enqueue(plan, inputs, run_id=run_id, claim=None, shadow_of=served_run_id)
        except QueueFull:
            self._drop(plan, "queue_full")
        except (Unavailable, RedisUnavailable):
            self._drop(plan, "unavailable")

    async def _run_here(
        self, plan: RunPlan, inputs: dict[str, Any], run_id: str, served_run_id: str
    ) -> None:
        # Like a sync run: steps in memory, stored once when it ends (no accepted row, no step
        # or progress writes), and with other shadow runs (``recorder``). A shadow run lost
        # with its process is only a missing pair in the comparison.
        runs = self._runs
        workflow = runs.workflow_of(plan)
        steps = RunSteps(runs.shared, remote=runs.remote)
        limits = attempt_limits(workflow, plan.limits, runs.settings.async_run_deadline_s)
        result = await runs.compiler.run(
            workflow, inputs, run_id=run_id, attrs=plan.attrs, cache=steps, **limits
        )

        # Counted in the hour's spend at once, though it is written with the next batch.
        self._spend.add(plan, result.trace.cost_usd)
        ended = EndedShadow(plan, result, inputs, steps.to_keep(result), served_run_id)
        self._recorder.add(ended)
