"""Rollouts: one candidate version takes ``percent`` of a label's traffic, the rest stays on the
label's version (the baseline). Users are split by ``control_plane.router.assign``: sticky per
(salt, user id), and raising the percentage only adds users.

Functions take the caller's ``Session`` and never commit; the request boundary does. Every change
writes an audit row with the candidates before and after.
"""

from __future__ import annotations

import functools
import secrets

from sqlmodel import Session

from control_plane.errors import Conflict, NotFound
from control_plane.rollouts import repository as rollout_repo
from control_plane.rollouts.schemas import CandidatePublic, RolloutPublic
from control_plane.router import Allocation, Arm
from control_plane.store.models import RolloutRow, VersionRow, WorkflowRow, utcnow
from control_plane.workflows import repository as repo
from control_plane.workflows._shared import audit, flush, row_id, version_row, workflow_row

__all__ = ["allocation_for", "get_rollout", "label_version", "set_rollout"]


def label_version(session: Session, wf: WorkflowRow, label: str) -> VersionRow:
    """The version ``label`` points at, or ``NotFound`` naming the labels that exist."""
    row = repo.get_label(session, row_id(wf), label)
    if row is None:
        known = ", ".join(lab.name for lab in repo.labels_of(session, row_id(wf))) or "none yet"
        raise NotFound(
            f"workflow {wf.name!r} has no label {label!r}; labels: {known} "
            f"(promote a version to it first)"
        )
    target = repo.get_version_by_id(session, row.version_id)
    assert target is not None  # a foreign key
    return target


def _serving(session: Session, wf: WorkflowRow, baseline: VersionRow, version: str) -> bool:
    # A candidate stops serving when it was archived or the label was moved onto it (promoted):
    # the stored rollout is kept as it was set, the router simply leaves such a candidate out.
    if version == baseline.version:
        return False
    row = repo.get_version(session, row_id(wf), version)
    return row is not None and row.status == "active"


def _public(
    session: Session, wf: WorkflowRow, label: str, baseline: VersionRow, row: RolloutRow | None
) -> RolloutPublic:
    if row is None:
        return RolloutPublic(workflow=wf.name, label=label, baseline=baseline.version)
    return RolloutPublic(
        workflow=wf.name,
        label=label,
        baseline=baseline.version,
        candidates=[
            CandidatePublic(
                version=c["version"],
                percent=round(float(c["share"]) * 100, 6),
                active=_serving(session, wf, baseline, c["version"]),
            )
            for c in row.candidates
        ],
        salt=row.salt,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def set_rollout(
    session: Session, *, workflow: str, label: str, version: str, percent: float, actor: str
) -> RolloutPublic:
    """Send ``percent`` (0–100) of ``label``'s traffic to ``version``; 0 ends the rollout.

    The salt is drawn when the label's rollout is first set and kept forever after (also
    through percent 0), so the users in a 10 % rollout stay in it when it is raised to 20 %.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100, got {percent!r}")
    wf = workflow_row(session, workflow)
    baseline = label_version(session, wf, label)
    candidate = version_row(session, wf, version)
    if percent > 0:
        if candidate.status != "active":
            raise Conflict(f"{workflow} {version} is archived; archived versions serve no traffic")
        if candidate.id == baseline.id:
            raise Conflict(
                f"{workflow} {version} is already the version of label {label!r}; "
                f"a rollout needs a different candidate"
            )
    row = rollout_repo.get_rollout(session, row_id(wf), label)
    before = list(row.candidates) if row is not None else None
    after = [{"version": version, "share": percent / 100}] if percent > 0 else []
    if row is None:
        row = RolloutRow(
            workflow_id=row_id(wf),
            label=label,
            salt=secrets.token_hex(16),
            candidates=after,
            updated_by=actor,
        )
    else:
        # A new list, not an in-place edit: JSON columns only notice reassignment.
        row.candidates = after
        row.updated_at = utcnow()
        row.updated_by = actor
    session.add(row)
    audit(
        session,
        actor=actor,
        action="rollout.set",
        target_kind="rollout",
        target=f"{workflow}:{label}",
        before={"baseline": baseline.version, "candidates": before} if before is not None else None,
        after={"baseline": baseline.version, "candidates": after},
    )
    flush(session, f"rollout of {workflow}:{label}")
    return _public(session, wf, label, baseline, row)


def get_rollout(session: Session, *, workflow: str, label: str) -> RolloutPublic:
    """The label's rollout; with no rollout set, the baseline alone and no candidates."""
    wf = workflow_row(session, workflow)
    baseline = label_version(session, wf, label)
    return _public(
        session, wf, label, baseline, rollout_repo.get_rollout(session, row_id(wf), label)
    )


@functools.lru_cache(maxsize=1024)
def _allocation(salt: str, baseline: str, arms: tuple[tuple[str, float], ...]) -> Allocation:
    # An Allocation precomputes its thresholds and memoises assignments: build it once per
    # configuration, not once per request.
    return Allocation(salt, baseline, tuple(Arm(v, s) for v, s in arms))


def allocation_for(session: Session, *, workflow: str, label: str) -> Allocation:
    """The router's view of ``label`` now: its version as the baseline plus the serving
    candidates (archived or already-promoted ones are left out)."""
    wf = workflow_row(session, workflow)
    baseline = label_version(session, wf, label)
    row = rollout_repo.get_rollout(session, row_id(wf), label)
    if row is None:
        # No rollout ever: every user gets the baseline, whatever the salt.
        return _allocation(f"{workflow}:{label}", baseline.version, ())
    arms = tuple(
        (c["version"], float(c["share"]))
        for c in row.candidates
        if _serving(session, wf, baseline, c["version"])
    )
    return _allocation(row.salt, baseline.version, arms)
