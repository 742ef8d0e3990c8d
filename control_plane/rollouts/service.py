"""Rollouts: one or more candidate versions each take a percent of a label's traffic, the rest
stays on the label's version (the baseline). Users are split by ``assignment.assign``: sticky
per (salt, user id), and raising the total percentage only adds users.

Functions take the caller's ``Session`` and never commit; the request boundary does. Every change
writes an audit row with the candidates before and after.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from control_plane.audit.service import record as audit
from control_plane.errors import Conflict, NotFound
from control_plane.kit.session import flush
from control_plane.kit.time import utcnow
from control_plane.rollouts import repository as rollout_repo
from control_plane.rollouts.assignment import Allocation, Arm
from control_plane.rollouts.schemas import CandidatePublic, RolloutPublic, check_candidates
from control_plane.store.tables import RolloutRow, VersionRow, WorkflowRow
from control_plane.workflows import repository as repo
from control_plane.workflows.lookup import row_id, version_row, workflow_row
from control_plane.workflows.ownership import refuse_while_running

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
    session: Session,
    *,
    workflow: str,
    label: str,
    candidates: Sequence[tuple[str, float]],
    actor: str,
) -> RolloutPublic:
    """Replace ``label``'s candidates by ``candidates``, (version, percent 0–100) pairs in order;
    the rest of the traffic stays on the label's version. Candidates at 0 % are dropped, so an
    empty list (or only zeros) ends the rollout.

    Every version must exist (``NotFound``); one with a percent above 0 must be active and not
    the label's own version (``Conflict``). Repeated versions and percents outside 0–100 or
    summing above 100 are ``ValueError`` (the HTTP schema rejects them first, as 422).

    The salt is drawn when the label's rollout is first set and kept forever after (also
    through an ended rollout), so the users in a 10 % rollout stay in it when it is raised to
    20 %. Order matters with several candidates: it lays out their ranges of users.
    """
    check_candidates(candidates)
    wf = workflow_row(session, workflow)
    baseline = label_version(session, wf, label)
    refuse_while_running(
        session, workflow_id=row_id(wf), workflow=workflow, label=label, change="set the rollout"
    )
    after: list[dict[str, Any]] = []
    for version, percent in candidates:
        candidate = version_row(session, wf, version)
        if percent == 0:
            continue
        if candidate.status != "active":
            raise Conflict(
                f"{workflow} {version} is archived; archived versions serve no traffic "
                f"(remove it from the candidates or set its percent to 0)"
            )
        if candidate.id == baseline.id:
            raise Conflict(
                f"{workflow} {version} is already the version of label {label!r}; "
                f"a rollout needs a different candidate"
            )
        after.append({"version": version, "share": percent / 100})
    row = rollout_repo.get_rollout(session, row_id(wf), label)
    before = list(row.candidates) if row is not None else None
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
