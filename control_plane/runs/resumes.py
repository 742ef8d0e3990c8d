"""``Idempotency-Key`` on ``POST /v1/runs/{id}/resume``: a resume retried with its key answers
the first resume instead of running the run again.

A resume is already at most once by itself (``service.claim_resume`` turns a failed run
``running`` in one conditional update; a repeat gets a 409 while it runs or once it
succeeded), but a client that lost the answer then cannot tell what happened. With a key the
repeat gets the first answer (``Idempotent-Replayed``), through the same claims as a run
(``idempotency``): claimed before the resume, renewed while it runs, completed with its answer.

The answer is stored right after the resume is, not in its transaction: if the process stops
in between, the claim lapses and the next request with the key resumes again, which the run's
own state refuses (409: it is no longer failed). Never twice, at worst a 409 instead of a replay.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

import anyio

from control_plane.runs import idempotency
from control_plane.runs.execution import Runs
from control_plane.runs.schemas import BudgetRequest, RunPublic, Submitted

__all__ = ["resume_once"]

log = logging.getLogger(__name__)


async def resume_once(
    runs: Runs,
    run_id: str,
    *,
    asynchronous: bool,
    principal: str,
    key: str | None,
    budget: BudgetRequest | None = None,
) -> Submitted:
    """Resume ``run_id``; with ``key``, at most once per caller and key."""
    if key is None:
        return Submitted(await runs.resume(run_id, asynchronous=asynchronous, budget=budget))
    hold = timedelta(seconds=runs.settings.idempotency_lease_s)
    digest = idempotency.resume_hash(run_id, asynchronous=asynchronous)
    claimed = await idempotency.acquire(
        runs.units, principal=principal, key=key, request=digest, hold=hold
    )
    if isinstance(claimed, RunPublic):
        return Submitted(claimed, replayed=True)
    claim = claimed
    try:
        async with idempotency.keep(runs.units, claim, lease=hold):
            run = await runs.resume(run_id, asynchronous=asynchronous, budget=budget)
        await runs.units(partial(idempotency.complete, claim=claim, response=run))
    except BaseException:
        # No answer stored: free the key so that the client may retry with it (shielded, so
        # that a request whose client went away still releases it).
        with anyio.CancelScope(shield=True):
            try:
                await runs.units(partial(idempotency.release, claim=claim))
            except Exception:
                log.exception("could not release idempotency claim %s", claim.id)
        raise
    return Submitted(run)
