"""Typed control-plane errors, each carrying the HTTP status it maps to.

Services raise these and never build HTTP responses themselves: the API layer (next issue) turns
any ``ControlPlaneError`` into ``{"error": {"code", "message", ...}}`` with ``status_code``, so a
bad request is always a precise 4xx and never a 500 with a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from engine import Problem

__all__ = [
    "Conflict",
    "ControlPlaneError",
    "Forbidden",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "InvalidDefinition",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "StoreBusy",
    "StoreUnavailable",
    "Unauthorized",
    "Unavailable",
    "ValidationFailed",
]


class ControlPlaneError(Exception):
    """Base of every error the control plane raises on purpose.

    ``status_code`` and ``code`` are class defaults so a subclass is one line; ``code`` is stable
    (clients and tests match on it), ``message`` is for people.
    """

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, Any]:
        """The body of the error response."""
        return {"code": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        """Headers the response must carry besides the body (none by default)."""
        return {}


class NotFound(ControlPlaneError):
    status_code = 404
    code = "not_found"


class Conflict(ControlPlaneError):
    status_code = 409
    code = "conflict"


class IdempotencyInProgress(Conflict):
    """The request's ``Idempotency-Key`` is held by a request that is still running."""

    code = "idempotency_in_progress"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class IdempotencyKeyReused(ControlPlaneError):
    """An ``Idempotency-Key`` sent again with a different request body."""

    status_code = 422
    code = "idempotency_key_reused"


class ValidationFailed(ControlPlaneError):
    """A well-formed request whose content cannot be accepted (a value of the wrong type)."""

    status_code = 422
    code = "invalid_value"


class Forbidden(ControlPlaneError):
    status_code = 403
    code = "forbidden"


class Unauthorized(ControlPlaneError):
    """No credentials, or credentials that name nobody (unknown or revoked key)."""

    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        # RFC 9110: a 401 names the scheme the client should use.
        return {"WWW-Authenticate": "Bearer"}


class TooManyFailedKeys(ControlPlaneError):
    """The client sent more unknown or revoked keys than a process admits a second
    (``access.failures``); retry after ``Retry-After`` seconds."""

    status_code = 429
    code = "too_many_failed_keys"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class PayloadTooLarge(ControlPlaneError):
    status_code = 413
    code = "payload_too_large"


class Unavailable(ControlPlaneError):
    """The server cannot take the request now (it is shutting down, or something it depends
    on is away); retry, maybe elsewhere."""

    status_code = 503
    code = "unavailable"
    retry_after_s: ClassVar[int] = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StoreUnavailable(Unavailable):
    """The store did not answer: unreachable, connection refused or dropped, or no pooled
    connection free within the pool timeout. Retry; a run retried with its ``Idempotency-Key``
    runs at most once even if the connection dropped while its commit was on the way."""

    code = "store_unavailable"
    # An outage or a saturated pool: a client retrying every second only adds to the queue.
    retry_after_s = 2


class StoreBusy(Unavailable):
    """SQLite refused a write transaction that raced another writer; nothing was changed and
    a retry succeeds."""

    code = "store_busy"


class InvalidDefinition(ControlPlaneError):
    """A workflow definition the engine rejected; carries every problem at once, with lines,
    so the user fixes the whole file in one pass."""

    status_code = 422
    code = "invalid_definition"

    def __init__(self, message: str, *, problems: Iterable[Problem | dict[str, Any]]) -> None:
        super().__init__(message)
        self.problems: list[dict[str, Any]] = [
            _problem_dict(p.to_json() if isinstance(p, Problem) else p) for p in problems
        ]

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "problems": self.problems}


class InvalidInput(InvalidDefinition):
    """Run inputs that do not bind to the version's declared inputs: a 422 listing every input
    problem with its location, in the same shape as definition problems."""

    code = "invalid_input"


def _problem_dict(data: dict[str, Any]) -> dict[str, Any]:
    # Problem.to_json omits an unknown line; clients get the same keys on every problem.
    return {
        "code": data["code"],
        "location": data["location"],
        "line": data.get("line"),
        "message": data["message"],
        "severity": data.get("severity", "error"),
    }
