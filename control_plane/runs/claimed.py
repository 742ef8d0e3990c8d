"""The step cache of a sync run that holds an ``Idempotency-Key`` claim.

A sync run keeps its steps in memory: a process that dies mid-run takes them with it, and the
client's retry on another replica runs (and bills) them all again. Under a claim the run's id is
known before it runs (the claim names it, and a takeover keeps it), so with Redis each completed
step is written there under that id as it completes, the way a queued run's are; the request
that takes the claim over after the lease lapsed loads them and goes on from them, counting
their cost as this run's (billed by the dead replica, never reported). Without Redis, or while
it is away, the run goes on as an unclaimed one would: nothing fails for want of sharing.
"""

from __future__ import annotations

import contextlib

from control_plane.runs.idempotency import Claim
from control_plane.runs.remote_steps import RemoteSteps
from control_plane.runs.steps import RunSteps, SharedSteps
from control_plane.store.redis import RedisUnavailable

__all__ = ["claimed_steps", "forget_claimed"]


async def claimed_steps(
    shared: SharedSteps, remote: RemoteSteps | None, claim: Claim | None
) -> tuple[RunSteps, bool]:
    """The run's step cache, and whether it carries steps a dead request completed (the run is
    then ``taken_over``)."""
    if claim is None or remote is None:
        return RunSteps(shared, remote=remote), False
    saved: dict[str, str] = {}
    if claim.taken_over:
        with contextlib.suppress(RedisUnavailable):
            saved = await remote.load(claim.run_id)
    steps = RunSteps(shared, saved=saved, remote=remote, run_id=claim.run_id)
    return steps, bool(saved)


async def forget_claimed(remote: RemoteSteps | None, claim: Claim | None) -> None:
    """Drop the run's steps from Redis once it is stored (they expire anyway)."""
    if claim is not None and remote is not None:
        with contextlib.suppress(RedisUnavailable):
            await remote.forget(claim.run_id)
