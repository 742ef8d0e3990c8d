"""Choosing the version a request runs, and why: a ``version`` pin, else a ``label`` pin, else
``prod`` with its rollout applied to the user id.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from control_plane.errors import Conflict
from control_plane.rollouts.service import allocation_for, label_version
from control_plane.router import assign
from control_plane.runs.schemas import RunRequest
from control_plane.store.models import VersionRow
from control_plane.workflows._shared import version_row, workflow_row

__all__ = ["DEFAULT_LABEL", "RunPlan", "plan_run"]

DEFAULT_LABEL = "prod"


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The version chosen for a request, and why (``attrs`` go into the engine's trace)."""

    workflow: str
    version: str
    digest: str
    definition: str
    label: str | None
    user_id: str | None
    reason: str
    attrs: dict[str, Any] = field(default_factory=dict)


def _plan(
    request: RunRequest, row: VersionRow, label: str | None, reason: str, **attrs: Any
) -> RunPlan:
    return RunPlan(
        workflow=request.workflow,
        version=row.version,
        digest=row.digest,
        definition=row.definition,
        label=label,
        user_id=request.user_id,
        reason=reason,
        attrs={"reason": reason, "label": label, **attrs},
    )


def plan_run(session: Session, *, request: RunRequest) -> RunPlan:
    """Choose the version: a ``version`` pin, else a ``label`` pin, else ``prod`` and its
    rollout. ``NotFound`` for an unknown workflow, version or label; ``Conflict`` for a pinned
    archived version (archived versions serve no traffic)."""
    wf = workflow_row(session, request.workflow)
    if request.version is not None:
        row = version_row(session, wf, request.version)
        if row.status != "active":
            raise Conflict(
                f"{wf.name} {row.version} is archived; archived versions serve no traffic"
            )
        return _plan(request, row, None, "pin", assignment="pin")
    if request.label is not None:
        # An explicit label is a pin too: the label's version, without its rollout.
        row = label_version(session, wf, request.label)
        return _plan(request, row, request.label, "label", assignment="label")
    allocation = allocation_for(session, workflow=wf.name, label=DEFAULT_LABEL)
    chosen = assign(allocation, request.user_id)
    if chosen.reason == "random":
        reason = "random"  # no user id: split in proportion, but not sticky
    elif allocation.rollout_buckets > 0:
        reason = f"rollout bucket {chosen.bucket}"
    else:
        reason = "label"
    row = version_row(session, wf, chosen.version)
    return _plan(
        request,
        row,
        DEFAULT_LABEL,
        reason,
        assignment=chosen.reason,
        bucket=chosen.bucket,
        baseline=allocation.baseline,
    )
