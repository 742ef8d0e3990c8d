"""What the sync and the async client share: a request as data (``Call``), the answer decoded
or turned into a typed error, when to retry, and how long to wait for a run.

A ``Call`` says whether sending it twice is harmless (``safe``): reads, outcomes (the same
value twice changes nothing) and runs carrying an ``Idempotency-Key`` (the server replays the
first answer). Only those are retried after the request may have reached the server; a request
that never did (connection refused) and answers that say nothing was done (503 ``store_busy``,
429 ``queue_full``) are retried whatever the call.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import httpx
from pydantic import ValidationError

from control_plane.client.models import ApiErrorBody, FieldProblem, RunDetail

__all__ = [
    "IDEMPOTENCY_HEADER",
    "RUN_MARGIN_S",
    "ApiError",
    "Call",
    "NoAnswer",
    "Retry",
    "decode",
    "failure",
    "new_idempotency_key",
    "progress_key",
    "run_timeout_s",
]

T = TypeVar("T")

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
# The server's sync run deadline when the client is not told (Settings.run_deadline_s).
DEFAULT_RUN_DEADLINE_S: Final = 60.0
# Past its deadline a run is still stored (and its answer sent): the server's store margin.
RUN_MARGIN_S: Final = 30.0
_NOTHING_DONE: Final = frozenset({"store_busy", "queue_full"})


class ApiError(Exception):
    """An error answer of the API: its status, stable code, message and any details."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @property
    def fields(self) -> list[FieldProblem]:
        """For a 422 ``invalid_request``: each field that did not match, and what was expected."""
        try:
            return ApiErrorBody.model_validate({"fields": self.details.get("fields", [])}).fields
        except ValidationError:
            return []


class NoAnswer(httpx.TransportError):
    """The request was sent and no answer came: it may have been carried out. For a run, it
    may have completed (and been billed); ``idempotency_key`` gets its answer without running
    it again."""

    def __init__(
        self, call: Call[Any], timeout_s: float, cause: httpx.TransportError, url: str
    ) -> None:
        what = "timed out" if isinstance(cause, httpx.TimeoutException) else "lost"
        super().__init__(f"{call.method} {call.path}: answer {what} after sending ({cause!r})")
        self.call = call
        self.timeout_s = timeout_s
        self.timed_out = isinstance(cause, httpx.TimeoutException)
        self.url = url

    @property
    def idempotency_key(self) -> str | None:
        return self.call.idempotency_key


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    safe: bool = False  # sending it twice does no harm (reads are safe whatever this says)
    long: bool = False  # a sync run or resume: waits for the run, up to the server's deadline
    runs: bool = False  # runs a workflow: no answer may mean it ran, and was billed

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get(IDEMPOTENCY_HEADER)

    @property
    def repeatable(self) -> bool:
        return self.safe or self.method == "GET" or self.idempotency_key is not None


def new_idempotency_key() -> str:
    """A fresh key (the client's own, when the caller gave none)."""
    return f"rgc-{uuid.uuid4().hex}"


def progress_key(run: RunDetail) -> tuple[object, ...]:
    """What ``follow`` reports a change of: the status, the attempt, each step's state."""
    steps = tuple((s.node, s.state, s.attempts) for s in run.steps)
    return (run.status, run.attempt, run.trace_attempt, steps)


def _env_seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else default


def run_timeout_s(timeout_s: float, run_deadline_s: float | None = None) -> float:
    """How long to wait for a sync run: the server's deadline plus its store margin, never
    less than ``timeout_s``. Unless given, both are read as the server reads them
    (``ROLLGRAPH_RUN_DEADLINE_S``, ``ROLLGRAPH_RUN_STORE_MARGIN_S``: a client started with its
    server's environment), else the server's defaults, 60 s and 30 s."""
    if run_deadline_s is None or not run_deadline_s > 0:
        run_deadline_s = _env_seconds("ROLLGRAPH_RUN_DEADLINE_S", DEFAULT_RUN_DEADLINE_S)
    margin_s = _env_seconds("ROLLGRAPH_RUN_STORE_MARGIN_S", RUN_MARGIN_S)
    return max(timeout_s, run_deadline_s + margin_s)


def decode(call: Call[T], response: httpx.Response) -> T:
    """The answer as ``call`` reads it, or the ``ApiError`` it carries."""
    if response.is_success:
        return call.parse(response.json())
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(response.status_code, "http_error", response.text[:200], {}) from None
    details = {k: v for k, v in error.items() if k not in {"code", "message"}}
    raise ApiError(response.status_code, code, message, details)


def failure(call: Call[Any], exc: httpx.TransportError, timeout_s: float, url: str) -> Exception:
    """What to raise for a transport error: ``NoAnswer`` when the request may have been carried
    out, the error itself when it never reached the server."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return exc
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return NoAnswer(call, timeout_s, exc, url)
    return exc


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


@dataclass(frozen=True, slots=True)
class Retry:
    """When the client sends a request again, and after how long (``None``: it does not)."""

    retries: int = 2
    backoff_s: float = 0.25
    max_wait_s: float = 5.0

    def _wait(self, attempt: int, hinted: float | None = None) -> float:
        guess = self.backoff_s * 2 ** (attempt - 1)
        return min(self.max_wait_s, guess if hinted is None else hinted)

    def after_error(self, call: Call[Any], attempt: int, exc: httpx.TransportError) -> float | None:
        if attempt > self.retries:
            return None
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        # A read timeout is not retried: the server's deadline has passed, the run is over.
        lost = isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)
        return self._wait(attempt) if never_sent or (lost and call.repeatable) else None

    def after_answer(self, call: Call[Any], attempt: int, response: httpx.Response) -> float | None:
        if attempt > self.retries or response.status_code not in (409, 429, 503):
            return None
        code = _code(response)
        if response.status_code == 409:
            # Our own earlier attempt (same key) still runs: its answer is replayed when done.
            keyed = call.idempotency_key is not None and code == "idempotency_in_progress"
            return self._wait(attempt, _retry_after(response)) if keyed else None
        if code in _NOTHING_DONE or (response.status_code == 503 and call.repeatable):
            return self._wait(attempt, _retry_after(response))
        return None
