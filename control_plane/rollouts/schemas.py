"""What the rollout service returns: pydantic models, never table rows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from control_plane.workflows.schemas import UtcDatetime

__all__ = ["CandidatePublic", "RolloutPublic"]


class CandidatePublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: str
    percent: float = Field(description="share of the label's traffic, 0–100")
    active: bool = Field(
        description="false when the version was archived or became the label's own version: "
        "such a candidate serves no traffic"
    )


class RolloutPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    workflow: str
    label: str
    baseline: str = Field(description="the version the label points at")
    candidates: list[CandidatePublic] = Field(default_factory=list)
    salt: str | None = Field(default=None, description="fixed when the rollout is first set")
    updated_at: UtcDatetime | None = None
    updated_by: str | None = None
