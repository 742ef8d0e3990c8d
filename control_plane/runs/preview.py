"""Which version a user would get on a label, and why, with no run and no side effect.

The preview goes through the same decision a run takes (``planning.plan_run`` on the store, not
the cache, so it answers what the store says now), then spells out the figures behind it: the
user's bucket, the rollout's size, the arm bucket when several candidates share the rollout, and
the experiment and ramp step that own the label's traffic. LaunchDarkly's "evaluate flag for a
context" and GrowthBook's "test a user" are the same question. A label's shadow candidate is
shown beside the decision: whether this user's requests are mirrored to it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from sqlmodel import Session

from control_plane.rollouts.assignment import BUCKETS, arm_bucket_of
from control_plane.rollouts.shadowing import ShadowData, shadow_bucket_of
from control_plane.runs.planning import plan_route, read_route
from control_plane.runs.schemas import RunRequest

__all__ = ["AssignmentArm", "AssignmentPreview", "ShadowPreview", "preview_assignment"]

Source = Literal["label", "rollout", "experiment"]


class AssignmentArm(BaseModel):
    """One version the label's traffic can reach, and its share (percent of all users)."""

    version: str
    percent: float
    role: Literal["baseline", "candidate"]


class ShadowPreview(BaseModel):
    """Whether this user's requests are also mirrored to the label's shadow candidate."""

    version: str = Field(description="the shadow candidate (never serves the user)")
    percent: float
    bucket: int = Field(description=f"the user's shadow bucket (its own salt), 0–{BUCKETS - 1}")
    shadow_buckets: int = Field(description="buckets below this number are mirrored")
    mirrored: bool


class AssignmentPreview(BaseModel):
    """The version ``user_id`` gets on ``label`` now, and the figures that decide it."""

    workflow: str
    label: str
    user_id: str
    version: str = Field(description="the version a run by this user would execute now")
    digest: str
    source: Source = Field(
        description="what decides: `label` (no rollout), `rollout` (the label's rollout), "
        "`experiment` (a running or halted experiment owns the label's traffic)"
    )
    assignment: Literal["baseline", "candidate"]
    reason: str = Field(description="the reason a run records in its trace, word for word")
    bucket: int = Field(description=f"the user's rollout bucket, 0–{BUCKETS - 1}")
    rollout_buckets: int = Field(description="buckets below this number are in the rollout")
    arm_bucket: int | None = Field(
        default=None, description="the bucket that picks among several candidates, when it applies"
    )
    experiment_id: int | None = None
    experiment_step: int | None = None
    arms: list[AssignmentArm]
    shadow: ShadowPreview | None = Field(
        default=None, description="the label's running shadow candidate, if any"
    )
    explanation: str = Field(description="the decision in one sentence")


def _shadow(shadow: ShadowData | None, user_id: str) -> ShadowPreview | None:
    if shadow is None:
        return None
    bucket = shadow_bucket_of(shadow.salt, user_id)
    return ShadowPreview(
        version=shadow.version,
        percent=shadow.percent,
        bucket=bucket,
        shadow_buckets=shadow.buckets,
        mirrored=bucket < shadow.buckets,
    )


def _source(experiment_id: int | None, rollout_buckets: int) -> Source:
    if experiment_id is not None:
        return "experiment"
    return "rollout" if rollout_buckets else "label"


def _explain(p: AssignmentPreview) -> str:
    owner = {
        "label": f"the label {p.label!r}",
        "rollout": f"the rollout on {p.label!r}",
        "experiment": f"experiment {p.experiment_id} (ramp step {p.experiment_step})",
    }[p.source]
    if p.rollout_buckets == 0:
        return f"{owner} sends every user to {p.version}: nothing is rolled out"
    share = f"{p.rollout_buckets / BUCKETS:.2%}"
    if p.assignment == "baseline":
        return (
            f"bucket {p.bucket} is not below {p.rollout_buckets} ({share} of users in "
            f"{owner}), so the user stays on the baseline {p.version}"
        )
    how = f"; arm bucket {p.arm_bucket} picks {p.version}" if p.arm_bucket is not None else ""
    return (
        f"bucket {p.bucket} is below {p.rollout_buckets} ({share} of users in {owner}), so "
        f"the user gets a candidate{how}"
    )


def preview_assignment(
    session: Session, *, workflow: str, label: str, user_id: str
) -> AssignmentPreview:
    """The decision ``POST /v1/run`` would take for ``user_id`` on ``label`` now; ``NotFound``
    for an unknown workflow or label, naming what exists."""
    route = read_route(session, workflow=workflow, label=label)
    request = RunRequest(workflow=workflow, label=label, user_id=user_id)
    chosen = plan_route(request, route)
    allocation = route.allocation
    rollout = allocation.rollout_buckets
    bucket = int(chosen.attrs["bucket"])
    in_rollout = bucket < rollout
    several = sum(1 for arm in allocation.candidates if arm.share > 0) > 1
    arms = [AssignmentArm(version=allocation.baseline, percent=0.0, role="baseline")]
    arms += [
        AssignmentArm(version=a.version, percent=a.share * 100, role="candidate")
        for a in allocation.candidates
    ]
    arms[0].percent = max(0.0, 100.0 - rollout * 100 / BUCKETS)
    preview = AssignmentPreview(
        workflow=workflow,
        label=label,
        user_id=user_id,
        version=chosen.version,
        digest=chosen.digest,
        source=_source(chosen.experiment_id, rollout),
        assignment=chosen.attrs["assignment"],
        reason=chosen.reason,
        bucket=bucket,
        rollout_buckets=rollout,
        arm_bucket=arm_bucket_of(allocation.salt, user_id) if several and in_rollout else None,
        experiment_id=chosen.experiment_id,
        experiment_step=chosen.experiment_step,
        arms=arms,
        shadow=_shadow(route.shadow, user_id),
        explanation="",
    )
    preview.explanation = _explain(preview)
    if preview.shadow is not None and preview.shadow.mirrored:
        preview.explanation += (
            f"; the request is also run, after its answer, on the shadow "
            f"{preview.shadow.version} (shadow bucket {preview.shadow.bucket} is below "
            f"{preview.shadow.shadow_buckets}), whose output nobody gets"
        )
    return preview
