"""``Idempotency-Key`` on ``POST /v1/run``: a key never runs twice and replays the first result.

The claim is atomic, never read-then-write: ``claim`` inserts the key's row (unique per caller
and key) in a short transaction of its own before anything runs, so of two requests with the
same key exactly one insert succeeds; the other sees the unique violation and reads the row
(``find``). ``complete`` stores the response in the transaction that stores the run;
``release`` deletes the claim when the request failed before a response, so the client may
retry with the same key.

A claim expires when the run it guards is certainly over (the run deadline plus a margin): a
claim still ``in_progress`` after that belongs to a process that died mid-request, and the next
request with the key takes it over (``take_over``, a conditional update, so of two such requests
one wins). The expiry doubles as the claim's owner token: ``complete`` and ``release`` act only
on a claim that still carries the expiry its request set.

Functions take the caller's ``Session`` and never commit; ``acquire`` is the claim loop a
request runs, each step in a short unit of work of its own (``Unit``).
"""

from __future__ import annotations

import hashlib
import json
import logging
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
from control_plane.store.tables import IdempotencyKeyRow

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
    "release",
    "request_hash",
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


@dataclass(frozen=True, slots=True)
class Claim:
    """A request's hold on a key: the row and the expiry that request set."""

    id: int
    expires_at: datetime


def claim(
    session: Session, *, principal: str, key: str, digest: str, expires_at: datetime
) -> Claim:
    """Insert the key's ``in_progress`` row; the commit raises ``IntegrityError`` when the
    caller already holds the key."""
    row = IdempotencyKeyRow(
        principal=principal, key=key, request_hash=digest, expires_at=expires_at
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return Claim(row.id, expires_at)


def find(session: Session, *, principal: str, key: str) -> IdempotencyKeyRow | None:
    query = select(IdempotencyKeyRow).where(
        IdempotencyKeyRow.principal == principal, IdempotencyKeyRow.key == key
    )
    return session.exec(query).first()


def take_over(
    session: Session, *, row_id: int, now: datetime, created_before: datetime, expires_at: datetime
) -> Claim | None:
    """Take an expired ``in_progress`` claim: the new expiry makes it this request's. Claims
    stored before expiries existed count as expired once created before ``created_before``.
    ``None`` when the claim is not expired (or another request took it first)."""
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
        .values(expires_at=expires_at)
    )
    return Claim(row_id, expires_at) if result.rowcount == 1 else None  # type: ignore[attr-defined]


def _held(row: IdempotencyKeyRow | None, claim: Claim) -> bool:
    return (
        row is not None
        and row.status == "in_progress"
        and row.expires_at is not None
        and as_utc(row.expires_at) == as_utc(claim.expires_at)
    )


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
    request: RunRequest,
    hold: timedelta,
) -> Claim | RunPublic:
    """This request's claim on ``key``, or the stored response when the key already answered
    this request. ``IdempotencyKeyReused`` (422) when the key answered another request;
    ``IdempotencyInProgress`` (409, ``Retry-After``) while an earlier request still runs."""
    digest = request_hash(request)
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
        break
    raise IdempotencyInProgress(
        f"a request with this {HEADER} is still running; retry later", retry_after_s=1
    )
