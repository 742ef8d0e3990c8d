"""Storing ended shadow runs in batches, out of the served runs' way.

Every write goes through the process's batch writer, which commits one transaction at a time:
a served run whose record arrives while a shadow run's commit is under way waits for that
commit, then for its own (``benchmarks.shadow`` measured this wait as most of what shadowing
added to a served request). So ended shadow runs are kept here and written together, every
``flush_s`` or ``max_batch`` runs, in one unit of work: one commit for many shadows instead of
one each. A shadow run still pending when its process dies is lost, which costs a pair in the
comparison and nothing else (its output reached no one).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlmodel import Session

import engine
from control_plane.errors import Unavailable
from control_plane.kit.batching import Batcher
from control_plane.metrics import Metrics, after_commit
from control_plane.metrics.shadow import DropReason
from control_plane.runs import service
from control_plane.runs.planning import RunPlan
from control_plane.runs.schemas import RunPublic

__all__ = ["EndedShadow", "ShadowRecorder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EndedShadow:
    """A shadow run that ended, with what its record needs."""

    plan: RunPlan
    result: engine.RunResult
    inputs: dict[str, Any]
    steps: dict[str, str]
    served_run_id: str


class ShadowRecorder:
    def __init__(
        self,
        write: Callable[[Callable[[Session], None]], Awaitable[None]],
        metrics: Metrics,
        drop: Callable[[RunPlan, DropReason], None],
        *,
        stored: Callable[[RunPlan, str], None] | None = None,
        due: Callable[[Session, RunPlan, RunPublic], None] | None = None,
        flush_s: float = 0.5,
        max_batch: int = 200,
    ) -> None:
        self._write = write
        self._metrics = metrics
        self._drop = drop
        self._stored = stored  # a succeeded shadow run, once committed: its evaluators run
        self._due = due  # in the unit that stores it: marked for its evaluators
        self._batches = Batcher(
            self._store, name="rollgraph-shadow-records", flush_s=flush_s, max_batch=max_batch
        )

    def add(self, ended: EndedShadow) -> None:
        """Keep ``ended`` for the next batch (written within ``flush_s``)."""
        self._batches.add(ended)

    async def flush(self) -> None:
        """Write what is pending now, and wait for every batch under way."""
        await self._batches.flush()

    async def aclose(self) -> None:
        await self._batches.aclose()

    async def _store(self, batch: list[EndedShadow]) -> None:
        try:
            await self._write(partial(self._record, batch))
        except Unavailable:  # shutting down, or the store is away: these runs are not stored
            for ended in batch:
                self._drop(ended.plan, "unavailable")
        except Exception:
            log.exception("storing %d shadow run(s) failed", len(batch))
            for ended in batch:
                self._drop(ended.plan, "unavailable")
        else:
            for ended in batch:
                if self._stored is not None and ended.result.ok:
                    self._stored(ended.plan, str(ended.result.trace.run_id))

    def _record(self, batch: list[EndedShadow], session: Session) -> None:
        observe = self._metrics.shadow.observe_run
        for ended in batch:
            public = service.record_run(
                session,
                plan=ended.plan,
                result=ended.result,
                inputs=ended.inputs,
                steps=ended.steps,
                shadow_of=ended.served_run_id,
            )
            if self._due is not None:
                self._due(session, ended.plan, public)
            after_commit(session, partial(observe, public, ended.result, first_end=True))
