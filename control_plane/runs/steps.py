"""The step cache of one served run, and the process's shared step cache.

The engine asks its ``StepCache`` for ``run:<run id>:<key>`` (the run's own completed steps,
what a resume reads) and ``shared:<key>`` (steps of nodes that opted in with ``cache:``).
``RunSteps`` serves one run: its own steps live in memory while it runs, preloaded from the
store when it resumes; what happens to them afterwards is the caller's choice, made per mode:

* a sync run keeps them in memory and the store receives them only if the run fails (in the
  transaction that records the failure), so a succeeded run pays nothing for resumability;
* an async run, which may outlive its process, also hands each step to ``persist`` as it
  completes (the batch writer), so a run interrupted by a crash resumes after its last step.

Shared entries go to ``SharedSteps``, a bounded in-memory LRU with expiry, per process.

With Redis (``REDIS_URL``, see ``remote_steps``), ``remote`` shares both across the deployment:
shared entries are read through to Redis on a local miss and written to both; a queued run's own
steps are written to Redis as they complete (awaited, so a worker that dies after a step leaves
it for the worker that takes the run over). When Redis is away, the local cache serves shared
entries and the store's ``persist`` takes the run's steps: nothing fails for want of Redis.
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Final

from control_plane.runs.remote_steps import RemoteSteps
from control_plane.runs.schemas import RESUMABLE
from control_plane.runs.writer import BatchWriter, WriterClosed
from control_plane.store.redis import RedisUnavailable
from control_plane.store.tables import RunStepRow
from engine import CachedStep, RunResult

__all__ = ["RunSteps", "SharedSteps", "step_persister"]

_RUN: Final = "run:"
_SHARED: Final = "shared:"


class SharedSteps:
    """``shared:`` entries: least recently used dropped beyond ``max_entries``; ``ttl_s``."""

    def __init__(self, *, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, tuple[CachedStep, float | None]] = OrderedDict()
        self._max = max_entries

    def get(self, key: str) -> CachedStep | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        step, expires = hit
        if expires is not None and expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return step

    def put(self, key: str, step: CachedStep, ttl_s: float | None) -> None:
        expires = time.monotonic() + ttl_s if ttl_s is not None else None
        self._entries[key] = (step, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RunSteps:
    """A ``StepCache`` for one run. Store keys are the engine's step keys without the
    ``run:<run id>:`` scope (the run id is the row's)."""

    def __init__(
        self,
        shared: SharedSteps,
        *,
        saved: Mapping[str, str] | None = None,
        persist: Callable[[str, str], object] | None = None,
        remote: RemoteSteps | None = None,
        run_id: str | None = None,
    ) -> None:
        self._shared = shared
        self._remote = remote
        self._run_id = run_id  # where the run's steps go in ``remote`` (None: not there)
        self._saved = dict(saved or {})  # key → encoded step, from the store
        # Completed in this attempt, encoded only when stored: most runs succeed and never are.
        self._new: dict[str, CachedStep] = {}
        self._persist = persist

    @staticmethod
    def _store_key(key: str) -> str:
        # run:<run id>:<step key> → <step key>
        return key.split(":", 2)[2]

    async def get(self, key: str) -> CachedStep | None:
        if key.startswith(_SHARED):
            local = self._shared.get(key)
            if local is not None or self._remote is None:
                return local
            try:
                encoded = await self._remote.shared_get(key)
            except RedisUnavailable:
                return None
            if encoded is None:
                return None
            return CachedStep.decode(encoded)
        if key.startswith(_RUN):
            name = self._store_key(key)
            step = self._new.get(name)
            if step is not None:
                return step
            encoded = self._saved.get(name)
            return CachedStep.decode(encoded) if encoded is not None else None
        return None

    async def put(self, key: str, step: CachedStep, *, ttl_s: float | None = None) -> None:
        if key.startswith(_SHARED):
            self._shared.put(key, step, ttl_s)
            if self._remote is not None:
                # Counted and logged by the link; this process still has the entry.
                with contextlib.suppress(RedisUnavailable):
                    await self._remote.shared_put(key, step.encode(), ttl_s)
            return
        if not key.startswith(_RUN):
            return
        name = self._store_key(key)
        self._new[name] = step
        if self._remote is not None and self._run_id is not None:
            try:
                await self._remote.save(self._run_id, name, step.encode())
                return
            except RedisUnavailable:
                pass  # the store takes it instead
        if self._persist is not None:
            self._persist(name, step.encode())

    async def aclose(self) -> None:
        return None

    @property
    def new(self) -> dict[str, str]:
        """The steps this attempt completed (key → encoded step)."""
        return {name: step.encode() for name, step in self._new.items()}

    @property
    def persisted(self) -> bool:
        """Whether each step was handed to the store as it completed (with Redis, steps may have
        gone there instead, so a failed run stores them all when it ends)."""
        return self._persist is not None and self._remote is None

    def to_keep(self, result: RunResult) -> dict[str, str]:
        """The steps to store with a finished run: a failed run's, unless they were stored as
        they completed; a succeeded run needs none (there is nothing left to resume). A failed
        run keeps the steps it was given too: those a dead process completed before this one
        took the run over are in Redis only, and a resume reads the store."""
        if result.status not in RESUMABLE or self.persisted:
            return {}
        return {**self._saved, **self.new}


def step_persister(writer: BatchWriter, run_id: str) -> Callable[[str, str], object]:
    """Stores each completed step of ``run_id`` through ``writer`` as it completes (an async
    run's steps, so that a resume or a takeover goes on from them)."""

    def persist(key: str, value: str) -> object:
        row = RunStepRow(run_id=run_id, key=key, value=value)
        try:
            return writer.post(lambda s: s.merge(row))
        except WriterClosed:  # stopping: the run is stored as interrupted anyway
            return None

    return persist
