"""The run endpoint's request and what it answers: pydantic models, never table rows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.workflows.schemas import UtcDatetime

__all__ = ["RunDetail", "RunPublic", "RunRequest", "RunStatus"]

RunStatus = Literal["succeeded", "failed"]


class RunRequest(BaseModel):
    """Run a workflow. The version is, in order: ``version`` (a pin), else ``label`` (its
    version, no rollout), else the ``prod`` label with its rollout applied to ``user_id``."""

    model_config = ConfigDict(extra="forbid")
    workflow: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=128)
    input: dict[str, Any] = Field(default_factory=dict, description="the workflow's inputs")
    user_id: str | None = Field(
        default=None, max_length=200, description="sticky assignment unit; none: random"
    )
    version: str | None = Field(default=None, min_length=1, max_length=64)
    label: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)


class RunPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    run_id: str
    workflow: str
    version: str
    label: str | None = None
    user_id: str | None = None
    status: RunStatus
    reason: str = Field(description="why this version: pin | label | rollout bucket N | random")
    outputs: dict[str, Any] | None = None
    error: str | None = None
    cost_usd: float
    latency_s: float | None = None
    created_at: UtcDatetime
    finished_at: UtcDatetime


class RunDetail(RunPublic):
    trace: dict[str, Any] = Field(description="the engine's trace: a step per node")
