"""What ``GET /v1/runs/{id}/events`` sends: the changes between reads of a run, as SSE frames.

A stream reads the run (``reads.get_run``: the row and the running attempt's progress) whenever
it may have changed, and ``RunEvents.update`` turns each read into the frames the client has
not had yet:

* ``step``: a node whose state or attempts changed since the last frame (every node, pending
  ones included, on a fresh stream), in definition order;
* ``run``: after the steps of a read, or when the run's status or attempt changed: its status,
  attempt, cost (billed over every attempt, the running attempt's cost so far included) and
  progress (steps ended of all);
* ``end``: the run ended; the stream closes after it.

An event's ``id`` is a cursor of what the client has been sent, not a counter: ``<attempt>.``
then one digit for the run and one per node in definition order. A node's digit is 0 nothing
sent, 1 pending, 2 running, 3 ended (succeeded, failed, skipped, cached, cancelled, fallback);
the run's 0 nothing sent, 1 queued, 2 running, 3 its final status sent in a ``run`` event, 4
``end`` sent. Each digit only
grows within an attempt, so ids grow digit by digit. Reconnecting with ``Last-Event-ID``, a
client is sent only what advanced past its cursor, on any replica (the cursor is all the state
there is): nothing twice. A cursor of an earlier attempt (the run was resumed since) starts
over; a cursor at ``end`` of the current attempt is answered 204, which tells an
``EventSource`` to stop reconnecting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from control_plane.errors import ControlPlaneError
from control_plane.runs.schemas import RunDetail, RunStatus, StepState, StepStateName

__all__ = [
    "Cursor",
    "EndEvent",
    "InvalidLastEventId",
    "RunEvent",
    "RunEvents",
    "StepEvent",
]

_CURSOR = re.compile(r"^([1-9][0-9]{0,9})\.([0-4])([0-3]{0,10000})$")
_RUN_STAGE: dict[str, int] = {"queued": 1, "running": 2}  # any other status: ended (3)
_ENDED, _SENT_END = 3, 4


class InvalidLastEventId(ControlPlaneError):
    """A ``Last-Event-ID`` this server never sent."""

    status_code = 400
    code = "invalid_last_event_id"


@dataclass(slots=True)
class Cursor:
    """What a client was sent of one attempt (see the module's docstring)."""

    attempt: int
    run: int = 0
    steps: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.attempt}.{self.run}{''.join(map(str, self.steps))}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.match(text.strip())
        if match is None:
            raise InvalidLastEventId(
                f"Last-Event-ID {text[:80]!r} is not an id of this stream (<attempt>.<digits>); "
                "reconnect without it to start over"
            )
        return cls(int(match[1]), int(match[2]), [int(d) for d in match[3]])


class StepEvent(BaseModel):
    """``event: step``: one node of the attempt changed."""

    node: str
    kind: str
    state: StepStateName
    attempts: int
    cost_usd: float
    latency_s: float | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None


class RunEvent(BaseModel):
    """``event: run``: the run's status, attempt, cost and progress."""

    run_id: str
    status: RunStatus
    attempt: int
    cost_usd: float
    steps_done: int
    steps_total: int
    error: str | None = None


class EndEvent(BaseModel):
    """``event: end``: the run's final status; the stream closes after it."""

    run_id: str
    status: RunStatus
    attempt: int
    cost_usd: float
    error: str | None = None


def _stage(state: str) -> int:
    return {"pending": 1, "running": 2}.get(state, 3)


def _frame(event: str, cursor: Cursor, data: BaseModel) -> str:
    return f"id: {cursor}\nevent: {event}\ndata: {data.model_dump_json()}\n\n"


class RunEvents:
    """One stream's memory of what it sent; ``update(read)`` answers the frames to send."""

    def __init__(self, cursor: Cursor | None = None) -> None:
        self._resumed = cursor
        self._cursor: Cursor | None = None
        self._sent: dict[str, tuple[str, int]] = {}  # node → (state, attempts) last sent
        self._run_sent: tuple[object, ...] | None = None
        self.finished = False

    def ended_before(self, run: RunDetail) -> bool:
        """The client's cursor is at ``end`` of the run's current attempt: nothing to send."""
        resumed = self._resumed
        return (
            resumed is not None
            and resumed.run == _SENT_END
            and resumed.attempt == run.attempt
            and _RUN_STAGE.get(run.status, _ENDED) == _ENDED
        )

    def _start(self, run: RunDetail) -> Cursor:
        self._sent, self._run_sent = {}, None
        resumed, self._resumed = self._resumed, None  # only the first read resumes
        if resumed is None or resumed.attempt != run.attempt:
            return Cursor(run.attempt)  # a fresh stream, or the run was resumed since
        # What the client already has: steps at the stage its cursor says are not sent again.
        for i, step in enumerate(run.steps):
            if i < len(resumed.steps) and _stage(step.state) <= resumed.steps[i]:
                self._sent[step.node] = (step.state, step.attempts)
        if resumed.run >= _RUN_STAGE.get(run.status, _ENDED):
            self._run_sent = self._run_key(run)
        return Cursor(run.attempt, min(resumed.run, _ENDED), list(resumed.steps))

    def update(self, run: RunDetail) -> list[str]:
        if self.finished:
            return []
        cursor = self._cursor
        if cursor is None or cursor.attempt != run.attempt:
            cursor = self._cursor = self._start(run)
        latency = {
            str(s.get("node")): s.get("latency_s")
            for s in run.trace.get("steps", ())
            if isinstance(s, dict)
        }
        while len(cursor.steps) < len(run.steps):
            cursor.steps.append(0)
        frames = []
        for i, step in enumerate(run.steps):
            key = (step.state, step.attempts)
            if self._sent.get(step.node) == key:
                continue
            self._sent[step.node] = key
            cursor.steps[i] = max(cursor.steps[i], _stage(step.state))
            frames.append(_frame("step", cursor, _step_event(step, latency.get(step.node))))
        run_key = self._run_key(run)
        stage = _RUN_STAGE.get(run.status, _ENDED)
        if frames or run_key != self._run_sent:
            self._run_sent = run_key
            cursor.run = max(cursor.run, stage)
            frames.append(_frame("run", cursor, _run_event(run)))
        if stage == _ENDED:
            cursor.run = _SENT_END
            end = EndEvent(
                run_id=run.run_id,
                status=run.status,
                attempt=run.attempt,
                cost_usd=run.cost_usd,
                error=run.error,
            )
            frames.append(_frame("end", cursor, end))
            self.finished = True
        return frames

    @staticmethod
    def _run_key(run: RunDetail) -> tuple[object, ...]:
        return (run.status, run.attempt, _cost(run), _done(run), len(run.steps), run.error)


def _done(run: RunDetail) -> int:
    return sum(1 for s in run.steps if _stage(s.state) == _ENDED)


def _cost(run: RunDetail) -> float:
    # A run's row is billed when an attempt ends: while one runs, add what it billed so far.
    if _RUN_STAGE.get(run.status, _ENDED) < _ENDED and run.trace_attempt == run.attempt:
        return round(run.cost_usd + float(run.trace.get("cost_usd") or 0.0), 8)
    return run.cost_usd


def _step_event(step: StepState, latency_s: Any) -> StepEvent:
    return StepEvent(
        node=step.node,
        kind=step.kind,
        state=step.state,
        attempts=step.attempts,
        cost_usd=step.cost_usd,
        latency_s=float(latency_s) if isinstance(latency_s, int | float) else None,
        started_at=step.started_at.isoformat() if step.started_at else None,
        ended_at=step.ended_at.isoformat() if step.ended_at else None,
        error=step.error,
    )


def _run_event(run: RunDetail) -> RunEvent:
    return RunEvent(
        run_id=run.run_id,
        status=run.status,
        attempt=run.attempt,
        cost_usd=_cost(run),
        steps_done=_done(run),
        steps_total=len(run.steps),
        error=run.error,
    )
