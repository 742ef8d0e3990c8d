"""The run endpoint's request and what it answers: pydantic models, never table rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from control_plane.kit.storable import MAX_JSON_DEPTH, StoreJsonObject, StoreText
from control_plane.kit.time import UtcDatetime

__all__ = [
    "RESUMABLE",
    "BudgetRequest",
    "ResumeRequest",
    "RunDetail",
    "RunMode",
    "RunPublic",
    "RunRequest",
    "RunStatus",
    "StepState",
    "StepStateName",
    "Submitted",
    "step_states",
]

# `queued` is reserved for runs handed to a queue of workers; this server runs them at once.
# `budget_exceeded`: stopped before a step that would take it past its budget; resumable.
RunStatus = Literal["queued", "running", "succeeded", "failed", "budget_exceeded"]
RunMode = Literal["sync", "async"]
# The statuses a run can be resumed from: it ended without its outputs.
RESUMABLE: frozenset[str] = frozenset({"failed", "budget_exceeded"})


_Limit = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False)] | None


class BudgetRequest(BaseModel):
    """Limits on one run: each a finite number > 0; absent is the workflow's own limit."""

    model_config = ConfigDict(extra="forbid")
    max_cost_usd: _Limit = None
    max_tokens: _Limit = None
    max_media_seconds: _Limit = None


class RunRequest(BaseModel):
    """Run a workflow. The version is ``version`` when pinned; otherwise ``label`` (default
    ``prod``) routes the request: its version, or a candidate of its rollout for ``user_id``."""

    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=128)
    input: StoreJsonObject = Field(
        default_factory=dict,
        description=f"the workflow's inputs: text without NUL or lone surrogates, finite "
        f"numbers, nested at most {MAX_JSON_DEPTH} levels",
    )
    user_id: StoreText | None = Field(
        default=None, max_length=200, description="sticky assignment unit; none: random"
    )
    version: StoreText | None = Field(default=None, min_length=1, max_length=64)
    label: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)
    mode: RunMode = Field(
        default="sync",
        description="`sync`: answer when the run ends (bounded by the run deadline); `async`: "
        "answer 202 at once with the run id, read the run later at `GET /v1/runs/{run_id}`",
    )
    budget: BudgetRequest | None = Field(
        default=None,
        description="lowers the workflow's budget for this run (each limit the lower of the "
        "two); a run that would exceed it ends `budget_exceeded`",
    )
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="shortens the run's deadline (the workflow's and the server's still apply)",
    )


class ResumeRequest(BaseModel):
    """Resume a failed run: the same run id, version and input; completed steps come from the
    run's step cache, neither executed nor billed again."""

    model_config = ConfigDict(extra="forbid")
    mode: RunMode = "sync"
    budget: BudgetRequest | None = Field(
        default=None,
        description="limits this attempt's budget sets instead of the run's (it may raise "
        "them: going on is the caller's decision); what earlier attempts billed counts",
    )


class RunPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    run_id: str
    workflow: str
    version: str
    label: str | None = None
    user_id: str | None = None
    mode: RunMode = "sync"
    status: RunStatus
    attempt: int = Field(default=1, description="executions of this run id (1 + resumes)")
    reason: str = Field(
        description="why this version: pin | label | rollout bucket N | experiment E bucket N | "
        "random"
    )
    experiment_id: int | None = Field(default=None, description="the experiment that routed it")
    outputs: dict[str, Any] | None = None
    error: str | None = None
    cost_usd: float = Field(description="billed over every attempt; cached steps cost nothing")
    latency_s: float | None = None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None = Field(default=None, description="none while it runs")
    shadow_of: str | None = Field(
        default=None,
        description="a shadow run: the served run whose inputs it ran on, after that run "
        "answered; its output reached no caller",
    )


# A step's state as followers see it: the engine's, with a cache hit told apart from a step
# that was executed (``cached``: completed by an earlier attempt or the shared cache, unbilled).
StepStateName = Literal[
    "pending", "running", "succeeded", "failed", "skipped", "cached", "cancelled", "fallback"
]
_ENGINE_STATES = frozenset(get_args(StepStateName))


class StepState(BaseModel):
    """One node of the attempt: where it is, how many attempts it took so far, what it cost."""

    model_config = ConfigDict(frozen=True)
    node: str
    kind: str
    state: StepStateName
    attempts: int = Field(description="calls of the node so far (1 + retries); 0 before it ran")
    cost_usd: float = Field(description="billed for this step in this attempt")
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    error: str | None = None


class RunDetail(RunPublic):
    input: dict[str, Any] | None = Field(
        default=None, description="the input it ran on (what a resume or a run again takes)"
    )
    trace: dict[str, Any] = Field(
        description="the engine's trace of the latest attempt (or of `?attempt=N`): a step per "
        "node; while an attempt runs, its progress so far (`status: running`, refreshed every "
        "`ROLLGRAPH_PROGRESS_INTERVAL_S`); empty before its first snapshot"
    )
    trace_attempt: int | None = Field(
        default=None, description="the attempt `trace` and `steps` are of; none without a trace"
    )
    steps: list[StepState] = Field(
        default_factory=list, description="each node's state in `trace`, in definition order"
    )


def step_states(trace: dict[str, Any], *, ended: bool) -> list[StepState]:
    """The nodes' states in a stored trace; ``ended``: the run is over, so a step still running
    or pending in it (a snapshot of an attempt its process never finished) was cancelled."""
    states = []
    for step in trace.get("steps", ()):
        state = step.get("status")
        if state == "succeeded" and step.get("cache_hit"):
            state = "cached"
        elif state not in _ENGINE_STATES or (ended and state in ("running", "pending")):
            state = "cancelled"
        states.append(
            StepState(
                node=str(step.get("node")),
                kind=str(step.get("kind")),
                state=state,
                attempts=int(step.get("attempts") or 0),
                cost_usd=float(step.get("cost_usd") or 0.0),
                started_at=step.get("started_at"),
                ended_at=step.get("ended_at"),
                error=step.get("error"),
            )
        )
    return states


@dataclass(frozen=True, slots=True)
class Submitted:
    """A ``POST /v1/run`` answer: the run, and whether it is an earlier request's answer;
    ``after``: what to do once the answer was sent (mirror it to the label's shadow)."""

    run: RunPublic
    replayed: bool = False
    after: Callable[[], None] | None = None
