"""``Idempotency-Key`` on ``POST /v1/run`` (and on a resume, ``resumes``): a key never runs
twice and replays the first result.

The claim is atomic, never read-then-write: ``claim`` inserts the key's row (unique per caller
and key) in a short transaction of its own before anything runs, so of two requests with the
same key exactly one insert succeeds; the other sees the unique violation and reads the row
(``find``). ``complete`` stores the response in the transaction that stores the run;
``release`` deletes the claim when the request failed before a response, so the client may
retry with the same key.

A claim is a lease (``idempotency_lease_s``): the request that holds it renews it while its run
executes (``keep``, every third of the lease), so a claim still ``in_progress`` past its expiry
belongs to a process that died mid-request, and the next request with the key takes it over
(``take_over``, a conditional update, so of two such requests one wins) within a lease of the
death, not after the run's whole deadline. Each request that holds the claim has its own token
(``holder``): ``renew``, ``complete`` and ``release`` act only on a claim that still carries it.

The claim names the run before it runs (``run_id``), and a takeover runs under that same id: a
sync run's steps are written to Redis under it as they complete (``RunSteps``), so the request
that takes over goes on from the steps the dead one completed (billed once, as this run's cost)
instead of executing them again.

Functions take the caller's ``Session`` and never commit; ``acquire`` is the claim loop a
request runs, each step in a short unit of work of its own (``Unit``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Final

from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control_plane.errors import Conflict, IdempotencyInProgress, IdempotencyKeyReused
from control_plane.kit.time import as_utc, utcnow
from control_plane.runs.schemas import RunPublic, RunRequest
from control_plane.store.db import Unit
from control_plane.store.tables import IdempotencyKeyRow, RunRow
from engine import new_run_id

__all__ = [
    "HEADER",
    "KEY_MAX_LENGTH",
    "KEY_PATTERN",
    "REPLAYED_HEADER",
    "Claim",
    "acquire",
    "claim",
    "complete",
    "find",
    "keep",
    "release",
    "renew",
    "request_hash",
    "resume_hash",
    "take_over",
    "withdraw",
]

log = logging.getLogger(__name__)


HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
KEY_MAX_LENGTH: Final = 255
# Printable ASCII, without leading or trailing spaces (HTTP would strip them).
KEY_PATTERN: Final = r"^[!-~]([ -~]*[!-~])?$"


def request_hash(body: RunRequest) -> str:
    """SHA-256 of the request's canonical JSON (defaults filled in, keys sorted)."""
    canonical = json.dumps(
        body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def resume_hash(run_id: str, *, asynchronous: bool) -> str:
    """SHA-256 of a resume request: never equal to a run's (its JSON has no ``resume`` key)."""
    canonical = json.dumps({"resume": run_id, "mode": "async" if asynchronous else "sync"})
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """A request's hold on a key: the row, this request's token, the run it runs, and whether
    it took the claim over from a request that died (its run's completed steps may exist)."""

    id: int
    holder: str
    run_id: str
    taken_over: bool = False


def claim(
    session: Session, *, principal: str, key: str, digest: str, expires_at: datetime
) -> Claim:
    """Insert the key's ``in_progress`` row; the commit raises ``IntegrityError`` when the
    caller already holds the key."""
    holder, run_id = uuid.uuid4().hex, new_run_id()
    row = IdempotencyKeyRow(
        principal=principal,
        key=key,
        request_hash=digest,
        expires_at=expires_at,
        holder=holder,
        run_id=run_id,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return Claim(row.id, holder, run_id)


def find(session: Session, *, principal: str, key: str) -> IdempotencyKeyRow | None:
    query = select(IdempotencyKeyRow).where(
        IdempotencyKeyRow.principal == principal, IdempotencyKeyRow.key == key
    )
    return session.exec(query).first()


def take_over(
    session: Session, *, row_id: int, now: datetime, created_before: datetime, expires_at: datetime
) -> Claim | None:
    """Take an expired ``in_progress`` claim: a new holder token makes it this request's, and
    it goes on with the claim's run id (``taken_over``). Claims stored before expiries existed
    count as expired once created before ``created_before``. ``None`` when the claim is not
    expired (or another request took it first)."""
    expired = or_(
        col(IdempotencyKeyRow.expires_at) < now,
        and_(
            col(IdempotencyKeyRow.expires_at).is_(None),
            col(IdempotencyKeyRow.created_at) < created_before,
        ),
    )
    result = session.execute(
        update(IdempotencyKeyRow)
        .where(
            col(IdempotencyKeyRow.id) == row_id,
            col(IdempotencyKeyRow.status) == "in_progress",
            expired,
        )
        .values(expires_at=expires_at, holder=(holder := uuid.uuid4().hex))
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.get(IdempotencyKeyRow, row_id)
    assert row is not None
    run_id = row.run_id
    # A claim from before claims named their run has no steps to go on from; a run already
    # stored under the id cannot be (it is stored with the claim's completion) but would make
    # this run's insert fail, so it gets a new id rather than a 500.
    if run_id is None or session.get(RunRow, run_id) is not None:
        run_id = new_run_id()
        row.run_id = run_id
        session.add(row)
        return Claim(row_id, holder, run_id)
    return Claim(row_id, holder, run_id, taken_over=True)


def renew(session: Session, *, claim: Claim, expires_at: datetime) -> bool:
    """Extend this request's lease; False when the claim is no longer its (taken over after
    the lease lapsed, or done)."""
    result = session.execute(
        update(IdempotencyKeyRow)
        .where(
            col(IdempotencyKeyRow.id) == claim.id,
            col(IdempotencyKeyRow.holder) == claim.holder,
            col(IdempotencyKeyRow.status) == "in_progress",
        )
        .values(expires_at=expires_at)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


@asynccontextmanager
async def keep(unit: Unit, claim: Claim, *, lease: timedelta) -> AsyncIterator[None]:
    """Renew ``claim`` every third of ``lease`` while the block runs. A renewal that fails (the
    store is briefly away) is retried at the next tick; one that finds the claim taken over is
    logged, and the request's ``complete`` then refuses to store a second answer."""

    async def renew_forever() -> None:
        every_s = lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every_s)
            try:
                held = await unit(partial(renew, claim=claim, expires_at=utcnow() + lease))
            except Exception:
                log.warning("could not renew idempotency claim %s; retrying", claim.id)
                continue
            if not held:
                log.warning("idempotency claim %s was taken over by another request", claim.id)
                return

    task = asyncio.create_task(renew_forever(), name=f"rollgraph-claim-{claim.id}")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _held(row: IdempotencyKeyRow | None, claim: Claim) -> bool:
    return row is not None and row.status == "in_progress" and row.holder == claim.holder


def complete(session: Session, *, claim: Claim, response: RunPublic) -> None:
    """Mark the claim done with the response it answered (in the run's transaction)."""
    row = session.get(IdempotencyKeyRow, claim.id)
    if row is None or not _held(row, claim):
        raise Conflict(
            f"the {HEADER} of this request expired and was taken over by another request"
        )
    row.status = "done"
    row.run_id = response.run_id
    row.response = response.model_dump(mode="json")
    session.add(row)


def release(session: Session, *, claim: Claim) -> None:
    """Delete a claim whose request ended without a response."""
    row = session.get(IdempotencyKeyRow, claim.id)
    if row is not None and _held(row, claim):
        session.delete(row)


def withdraw(session: Session, *, claim: Claim, run_id: str) -> None:
    """Delete a claim completed with ``run_id`` whose response was never sent (an async run that
    could not be queued): the client's retry with the same key then runs it anew."""
    row = session.get(IdempotencyKeyRow, claim.id)
    if row is not None and row.run_id == run_id:
        session.delete(row)


async def acquire(
    unit: Unit,
    *,
    principal: str,
    key: str,
    request: RunRequest | str,
    hold: timedelta,
) -> Claim | RunPublic:
    """This request's claim on ``key``, or the stored response when the key already answered
    this request (a ``RunRequest``, or the hash of another, ``resume_hash``).
    ``IdempotencyKeyReused`` (422) when the key answered another request;
    ``IdempotencyInProgress`` (409, ``Retry-After``) while an earlier request still runs."""
    digest = request if isinstance(request, str) else request_hash(request)
    for _ in range(3):
        now = utcnow()
        try:
            return await unit(
                partial(claim, principal=principal, key=key, digest=digest, expires_at=now + hold)
            )
        except IntegrityError:
            pass  # the caller already holds this key
        row = await unit(partial(find, principal=principal, key=key))
        if row is None:
            continue  # released since our insert failed: claim it again
        if row.request_hash != digest:
            raise IdempotencyKeyReused(
                f"this key was used for a different request ({HEADER}: {key!r})"
            )
        if row.status == "done" and row.response is not None:
            return RunPublic.model_validate(row.response)
        # In progress: ours only if its request died with its process (the claim expired).
        row_id = row.id
        assert row_id is not None
        taken = await unit(
            partial(
                take_over,
                row_id=row_id,
                now=now,
                created_before=now - hold,
                expires_at=now + hold,
            )
        )
        if taken is not None:
            log.warning("took over an expired idempotency claim (%s)", row_id)
            return taken
        # Until its lease lapses, unless its request renews it first.
        left_s = (as_utc(row.expires_at) - now).total_seconds() if row.expires_at else 1.0
        raise IdempotencyInProgress(
            f"a request with this {HEADER} is still running; retry later",
            retry_after_s=max(1, min(math.ceil(left_s), math.ceil(hold.total_seconds()))),
        )
    raise IdempotencyInProgress(
        f"a request with this {HEADER} is still running; retry later", retry_after_s=1
    )
