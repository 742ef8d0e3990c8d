"""Storing evaluators' scores in batches, out of the served runs' way.

Every write goes through the process's batch writer, one transaction at a time, and the served
runs' records wait behind whatever is ahead of them. A commit per evaluated run put one more
commit (an fsync on SQLite) in front of the next served run; so the workers keep their scores
here and they are written together, every ``flush_s`` or ``max_batch`` runs, like ended shadow
runs (``runs.shadow.recorder``). A batch that cannot be written leaves its runs marked due
(``due``): the sweep evaluates them again, and their scores are still stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from sqlmodel import Session

from control_plane.kit.batching import Batcher
from control_plane.metrics.evaluations import EvaluationEnd, EvaluationMetrics
from control_plane.runs.evaluations.due import clear_due
from control_plane.runs.evaluations.service import Recorded, record_score
from engine.evaluation import Score
from engine.evaluator_spec import EvaluatorSpec
from engine.spec import WorkflowSpec

__all__ = ["ScoreRecorder", "Scored", "store_scored"]

log = logging.getLogger(__name__)

_Stored = list[list[Recorded]]  # per run of a batch, per score: how it was stored


@dataclass(slots=True)
class Scored:
    """One run's evaluation, scored and not yet stored."""

    spec: WorkflowSpec
    run_id: str
    scores: list[tuple[EvaluatorSpec, Score]]
    ended: dict[str, EvaluationEnd] = field(default_factory=dict)  # the rest, decided already

    def settle(self, stored: list[Recorded], metrics: EvaluationMetrics) -> None:
        """Once committed: how each evaluator ended, counted."""
        for (evaluator, _), recorded in zip(self.scores, stored, strict=True):
            self.ended[evaluator.name] = "failed" if recorded == "kind_conflict" else recorded
        for name, result in self.ended.items():
            metrics.observe(workflow=self.spec.name, evaluator=name, result=result)


def store_scored(batch: list[Scored], session: Session) -> list[list[Recorded]]:
    """Unit of work: each run's scores stored (at most once each) and its due mark cleared,
    also without a score (a failed judge is counted, not retried forever)."""
    out = []
    for scored in batch:
        out.append([record_score(session, run_id=scored.run_id, score=s) for _, s in scored.scores])
        clear_due(session, run_id=scored.run_id)
    return out


class ScoreRecorder:
    def __init__(
        self,
        write: Callable[
            [Callable[[Session], list[list[Recorded]]]], Awaitable[list[list[Recorded]]]
        ],
        metrics: EvaluationMetrics,
        *,
        flush_s: float = 0.5,
        max_batch: int = 200,
    ) -> None:
        self._write = write
        self._metrics = metrics
        self._batches = Batcher(
            self._store, name="rollgraph-evaluator-scores", flush_s=flush_s, max_batch=max_batch
        )

    def add(self, scored: Scored) -> None:
        """Keep ``scored`` for the next batch (written within ``flush_s``)."""
        self._batches.add(scored)

    async def flush(self) -> None:
        """Write what is pending now, and wait for every batch under way."""
        await self._batches.flush()

    async def aclose(self) -> None:
        await self._batches.aclose()

    async def _store(self, batch: list[Scored]) -> None:
        try:
            stored = await self._write(partial(store_scored, batch))
        except Exception:  # the store is away, or shutting down: the due marks stay
            log.exception("storing the scores of %d run(s) failed", len(batch))
            for scored in batch:
                self._metrics.observe_drop(workflow=scored.spec.name, reason="unavailable")
            return
        for scored, recorded in zip(batch, stored, strict=True):
            scored.settle(recorded, self._metrics)
