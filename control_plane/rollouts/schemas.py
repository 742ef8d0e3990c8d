"""What the rollout service takes and returns: pydantic models, never table rows.

``check_candidates`` holds the rules a candidate list obeys on its own (no duplicates, percents
0–100 summing to at most 100); the request model and the service both apply it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from control_plane.kit.storable import StoreText
from control_plane.kit.time import UtcDatetime

__all__ = [
    "MAX_CANDIDATES",
    "CandidateIn",
    "CandidatePublic",
    "RolloutPublic",
    "RolloutSet",
    "check_candidates",
]

MAX_CANDIDATES = 20
# Float sums such as 33.3 + 33.3 + 33.4 land a hair above 100; that is not an over-allocation.
_SUM_TOLERANCE = 1e-9


def check_candidates(candidates: Sequence[tuple[str, float]]) -> None:
    """``ValueError`` saying what to fix when versions repeat or percents are not 0–100 each
    and at most 100 together. Whether the versions exist and may serve is the service's part."""
    seen: set[str] = set()
    for version, percent in candidates:
        if version in seen:
            raise ValueError(
                f"candidate {version!r} is listed more than once; list each version once"
            )
        seen.add(version)
        if not 0 <= percent <= 100:  # also rejects NaN
            raise ValueError(
                f"percent of candidate {version!r} must be between 0 and 100, got {percent!r}"
            )
    total = math.fsum(percent for _, percent in candidates)
    if total > 100 + _SUM_TOLERANCE:
        parts = " + ".join(f"{v} {p:g}" for v, p in candidates)
        raise ValueError(
            f"candidate percents sum to {total:g} ({parts}); the sum must be at most 100, "
            f"lower some of them"
        )


class CandidateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: StoreText = Field(min_length=1, max_length=64, description="a candidate version")
    percent: float = Field(ge=0, le=100, description="its share of the label's traffic, 0–100")


class RolloutSet(BaseModel):
    """Either the shorthand ``{version, percent}`` (one candidate) or ``{candidates: [...]}``
    (the full list); either way the label's candidate list is replaced."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"version": "v3.3", "percent": 10},
                {
                    "candidates": [
                        {"version": "v3.3", "percent": 10},
                        {"version": "v3.4", "percent": 5},
                    ]
                },
            ]
        },
    )
    version: StoreText | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="shorthand: the only candidate (with `percent`)",
    )
    percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="shorthand: the candidate's share of the label's traffic; 0 ends the rollout",
    )
    candidates: list[CandidateIn] | None = Field(
        default=None,
        max_length=MAX_CANDIDATES,
        description="every candidate with its percent, in order; candidates at 0 are dropped, "
        "an empty list ends the rollout; the percents sum to at most 100",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        shorthand = self.version is not None or self.percent is not None
        if self.candidates is not None and shorthand:
            raise ValueError(
                "give either `version` and `percent` (one candidate) or `candidates` (the full "
                "list), not both"
            )
        if self.candidates is None and (self.version is None or self.percent is None):
            given = [k for k in ("version", "percent") if getattr(self, k) is not None]
            what = f"`{given[0]}` alone is not enough" if given else "no candidate given"
            raise ValueError(
                f"{what}: give `version` and `percent` (one candidate) or `candidates` (the "
                f"full list)"
            )
        check_candidates(self.pairs())
        return self

    def pairs(self) -> list[tuple[str, float]]:
        """The candidate list either form describes, as (version, percent) pairs."""
        if self.candidates is not None:
            return [(c.version, c.percent) for c in self.candidates]
        if self.version is None or self.percent is None:
            return []
        return [(self.version, self.percent)]


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
