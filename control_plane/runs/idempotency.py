"""``Idempotency-Key`` on ``POST /v1/run``: a key never runs twice and replays the first result.

The claim is atomic, never read-then-write: ``claim`` inserts the key's row (unique per caller
and key) in a short transaction of its own before anything runs, so of two requests with the
same key exactly one insert succeeds; the other sees the unique violation and reads the row
(``find``). ``complete`` stores the response in the transaction that stores the run;
``release`` deletes the claim when the request failed before a response, so the client may
retry with the same key.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from sqlmodel import Session, select

from control_plane.runs.schemas import RunPublic, RunRequest
from control_plane.store.models import IdempotencyKeyRow

__all__ = [
    "HEADER",
    "KEY_MAX_LENGTH",
    "KEY_PATTERN",
    "REPLAYED_HEADER",
    "claim",
    "complete",
    "find",
    "release",
    "request_hash",
]

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


def claim(session: Session, *, principal: str, key: str, digest: str) -> int:
    """Insert the key's ``in_progress`` row; the commit raises ``IntegrityError`` when the
    caller already holds the key. Returns the row's id."""
    row = IdempotencyKeyRow(principal=principal, key=key, request_hash=digest)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def find(session: Session, *, principal: str, key: str) -> IdempotencyKeyRow | None:
    query = select(IdempotencyKeyRow).where(
        IdempotencyKeyRow.principal == principal, IdempotencyKeyRow.key == key
    )
    return session.exec(query).first()


def complete(session: Session, *, claim_id: int, response: RunPublic) -> None:
    """Mark the claim done with the response it answered (in the run's transaction)."""
    row = session.get(IdempotencyKeyRow, claim_id)
    if row is None:  # released meanwhile: keep the key held by this run
        raise LookupError(f"idempotency claim {claim_id} is gone")
    row.status = "done"
    row.run_id = response.run_id
    row.response = response.model_dump(mode="json")
    session.add(row)


def release(session: Session, *, claim_id: int) -> None:
    """Delete a claim whose request ended without a response."""
    row = session.get(IdempotencyKeyRow, claim_id)
    if row is not None and row.status == "in_progress":
        session.delete(row)
