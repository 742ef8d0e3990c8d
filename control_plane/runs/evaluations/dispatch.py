"""Running a workflow's evaluators on its succeeded runs, off the request path.

Like mirrored requests (``runs.shadow.dispatch``), a succeeded run is offered to a bounded
asyncio queue without waiting (``put_nowait``): a sync run once its answer was sent (the
route's background task), an async or queued run once it was stored (in the process, or on
the worker, that finished it), a shadow run once its batch was stored. A full queue drops the
evaluation, counted (``rollgraph_evaluations_dropped_total``); a caller never waits for an
evaluator and never fails because of one. A few worker tasks take the queue and, per run:

1. keep the evaluators whose sticky sample (``engine.evaluation.sampled``) includes the run;
2. read the run, its trace (the quality figures a simulated judge follows) and the scores it
   has already: an evaluator whose score is stored is not run again;
3. score (a judge's call is billed to ``rollgraph_evaluator_cost_usd_total``, never to the run);
4. store the scores, with other runs' in a batch (``recorder``), each as the run's outcome
   ``eval.NAME`` at most once (``service.record_score``), the run's due mark cleared (``due``);
   a concurrent or repeated evaluation finds them there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from sqlmodel import Session

import engine
from control_plane.errors import Unavailable
from control_plane.metrics import Metrics
from control_plane.metrics.evaluations import EvaluationEnd
from control_plane.runs.evaluations.due import mark_due, take_due
from control_plane.runs.evaluations.recorder import Scored, ScoreRecorder, store_scored
from control_plane.runs.evaluations.service import load_finished
from control_plane.settings import Settings
from control_plane.store.db import UnitGate
from engine.evaluation import EvaluationFailed, FinishedRun, Score, evaluate, sampled
from engine.evaluator_spec import EvaluatorSpec
from engine.providers.base import Provider
from engine.spec import WorkflowSpec

__all__ = ["EvaluationDispatch", "EvaluationHost"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class EvaluationHost(Protocol):
    """What evaluations use of the process's run machinery (``execution.Runs`` is one)."""

    settings: Settings
    metrics: Metrics
    units: UnitGate  # reads, like a request's

    def write(self, work: Callable[[Session], T]) -> Awaitable[T]: ...

    def compiled(self, *, version: str, digest: str, definition: str) -> engine.Workflow: ...


class RunFacts(Protocol):
    """What marking a run due reads of it (``runs.schemas.RunPublic`` has it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Job:
    spec: WorkflowSpec
    run_id: str


class EvaluationDispatch:
    """The bounded queue of succeeded runs to evaluate and the workers that score them."""

    def __init__(self, host: EvaluationHost, providers: Iterable[Provider]) -> None:
        self._host = host
        self._providers = {p.name: p for p in providers}
        self._capacity = host.settings.evaluation_queue_size
        self._workers = host.settings.evaluation_workers
        self._queue: asyncio.Queue[_Job] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._recorder = ScoreRecorder(host.write, host.metrics.evaluations)

    async def start(self) -> None:
        # Made on the running loop: an asyncio queue belongs to the loop that uses it.
        self._queue = asyncio.Queue(maxsize=self._capacity)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"rollgraph-evaluator-{i}")
            for i in range(self._workers)
        ]

    async def aclose(self) -> None:
        """Stop evaluating; queued and unfinished evaluations are lost (scores never stored
        twice, but a run may miss one: evaluators are samples, not accounts)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks = []
        await self._recorder.aclose()

    def offer(self, workflow: engine.Workflow, run_id: str) -> None:
        """Queue the evaluation of the succeeded run ``run_id`` when its workflow declares
        evaluators, without waiting; a full (or not started) queue drops it, counted."""
        spec = workflow.spec
        if not spec.evaluators:
            return
        try:
            if self._queue is None:
                raise asyncio.QueueFull
            self._queue.put_nowait(_Job(spec, run_id))
        except asyncio.QueueFull:
            self._host.metrics.evaluations.observe_drop(workflow=spec.name, reason="queue_full")

    def due(self, session: Session, workflow: engine.Workflow, run: RunFacts) -> None:
        """In the unit of work that stores ``run``: mark it due when it succeeded and its
        evaluators' sample includes it, so that the sweep evaluates it should this process
        stop before it did."""
        evaluators = workflow.spec.evaluators
        if run.status == "succeeded" and any(sampled(e, run.run_id) for e in evaluators):
            mark_due(session, run_id=run.run_id)

    async def requeue_due(self) -> int:
        """Offer again the runs due for longer than ``evaluation_retry_s`` (the sweep's part)."""
        older_than_s = self._host.settings.evaluation_retry_s
        due = await self._host.write(partial(take_due, older_than_s=older_than_s))
        for run in due:
            try:
                workflow = self._host.compiled(
                    version=run.version, digest=run.digest, definition=run.definition
                )
            except Exception:  # no longer compiles here: its mark is retried elsewhere
                log.warning("run %s: its version no longer compiles; not evaluated", run.run_id)
                continue
            self.offer(workflow, run.run_id)
        return len(due)

    async def drain(self) -> None:
        """Wait until every queued evaluation was stored or given up (tests, benchmarks)."""
        if self._queue is not None:
            await self._queue.join()
        await self._recorder.flush()

    async def evaluate(self, spec: WorkflowSpec, run_id: str) -> dict[str, EvaluationEnd]:
        """Run the evaluators of ``spec`` on the run now and store its scores in a unit of its
        own; per evaluator, how it ended (the workers batch theirs instead: ``recorder``)."""
        scored = await self._scored(spec, run_id)
        if scored is None:
            return {}
        stored = await self._host.write(partial(store_scored, [scored]))
        scored.settle(stored[0], self._host.metrics.evaluations)
        return scored.ended

    async def _scored(self, spec: WorkflowSpec, run_id: str) -> Scored | None:
        """The run's scores, not stored yet; ``None`` when there is nothing to store."""
        skipped: dict[str, EvaluationEnd] = {}
        wanted: list[EvaluatorSpec] = []
        for evaluator in spec.evaluators:
            if sampled(evaluator, run_id):
                wanted.append(evaluator)
            else:
                skipped[evaluator.name] = "skipped"
        if not wanted:  # never marked due: nothing to read or clear
            self._observe(spec, skipped)
            return None
        loaded = await self._host.units(
            partial(load_finished, run_id=run_id, metrics=[e.metric for e in wanted])
        )
        if loaded is None:
            return None  # not a succeeded run (or gone): nothing to score
        run, done = loaded
        scored = Scored(spec, run_id, [], skipped)
        for evaluator in wanted:
            if evaluator.metric in done:
                scored.ended[evaluator.name] = "duplicate"
                continue
            score = await self._score(spec, evaluator, run)
            if score is None:
                scored.ended[evaluator.name] = "failed"
            else:
                scored.scores.append((evaluator, score))
        return scored

    def _observe(self, spec: WorkflowSpec, ended: dict[str, EvaluationEnd]) -> None:
        for name, result in ended.items():
            self._host.metrics.evaluations.observe(
                workflow=spec.name, evaluator=name, result=result
            )

    async def _score(
        self, spec: WorkflowSpec, evaluator: EvaluatorSpec, run: FinishedRun
    ) -> Score | None:
        metrics = self._host.metrics.evaluations
        try:
            score = await evaluate(evaluator, run, workflow=spec, providers=self._providers)
        except EvaluationFailed as exc:
            # Billed even without a score: the judge was called and answered nonsense.
            metrics.observe_cost(
                workflow=spec.name, evaluator=evaluator.name, cost_usd=exc.cost_usd
            )
            log.warning("evaluator %s of run %s: %s", evaluator.name, run.run_id, exc)
            return None
        metrics.observe_cost(workflow=spec.name, evaluator=evaluator.name, cost_usd=score.cost_usd)
        return score

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                scored = await self._scored(job.spec, job.run_id)
                if scored is not None:
                    self._recorder.add(scored)
            except asyncio.CancelledError:
                raise
            except Unavailable:
                self._host.metrics.evaluations.observe_drop(
                    workflow=job.spec.name, reason="unavailable"
                )
            except Exception:  # an evaluator must never take its worker down with it
                log.exception("evaluating run %s failed", job.run_id)
            finally:
                self._queue.task_done()
