"""How a label routes its traffic, read from the store: the allocation (a running or halted
experiment's arms under its salt, since a halt keeps the traffic where it was; else the label's
version plus the serving candidates of its rollout), every version it can choose, and its shadow
candidate while one is running.
``runs.planning`` turns a route into one request's version; the metrics gauges read the same
routes, so the shares they export are the shares that route."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlmodel import Session, select

from control_plane.rollouts.assignment import Allocation, Arm
from control_plane.rollouts.service import allocation_for, label_version
from control_plane.rollouts.shadowing import ShadowData
from control_plane.store.tables import ShadowRow, VersionRow, WorkflowRow
from control_plane.workflows.lookup import row_id, version_row, workflow_row
from control_plane.workflows.ownership import running_on

__all__ = ["Route", "VersionData", "read_pin", "read_route", "read_shadow"]


@dataclass(frozen=True, slots=True)
class VersionData:
    """What a run needs of a stored version (a detached copy: cached across sessions)."""

    version: str
    digest: str
    definition: str
    status: str

    @classmethod
    def of(cls, row: VersionRow) -> VersionData:
        return cls(row.version, row.digest, row.definition, row.status)


@dataclass(frozen=True, slots=True)
class Route:
    """How a label routes: the router's allocation, and every version it can choose."""

    label: str
    allocation: Allocation
    versions: Mapping[str, VersionData]
    experiment_id: int | None = None  # a running or halted experiment owns the label's traffic
    experiment_step: int = 0
    shadow: ShadowData | None = None  # a version that runs, unseen, on some requests


def read_pin(session: Session, *, workflow: str, version: str) -> VersionData:
    """A version for a pin, archived or not; ``NotFound`` naming what exists."""
    return VersionData.of(version_row(session, workflow_row(session, workflow), version))


def read_route(session: Session, *, workflow: str, label: str) -> Route:
    """The label's allocation and the versions it can choose: a running experiment's arms under
    its salt, else the label's version plus the serving candidates of its rollout. ``NotFound``
    for an unknown workflow or label, naming what exists."""
    wf = workflow_row(session, workflow)
    experiment = running_on(session, workflow_id=row_id(wf), label=label)
    if experiment is not None:
        arms = tuple((str(a["version"]), float(a["share"])) for a in experiment.arms)
        allocation = Allocation(
            experiment.salt, experiment.baseline, tuple(Arm(v, s) for v, s in arms)
        )
    else:
        allocation = allocation_for(session, workflow=workflow, label=label)
    chosen = (allocation.baseline, *(arm.version for arm in allocation.candidates))
    return Route(
        label=label,
        allocation=allocation,
        versions={v: VersionData.of(version_row(session, wf, v)) for v in chosen},
        experiment_id=experiment.id if experiment is not None else None,
        experiment_step=experiment.step if experiment is not None else 0,
        shadow=read_shadow(session, wf=wf, label=label),
    )


def read_shadow(session: Session, *, wf: WorkflowRow, label: str) -> ShadowData | None:
    """The label's running shadow candidate, or ``None``. Like a rollout's candidate, a shadow
    whose version was archived, or became the label's own version, stops (its row is kept)."""
    row = session.exec(
        select(ShadowRow).where(
            ShadowRow.workflow_id == row_id(wf),
            ShadowRow.label == label,
            ShadowRow.stopped_at == None,  # noqa: E711  (SQL IS NULL)
        )
    ).first()
    if row is None:
        return None
    version = version_row(session, wf, row.version)
    if version.status != "active" or version.id == label_version(session, wf, label).id:
        return None
    return ShadowData(
        version=row.version,
        digest=version.digest,
        definition=version.definition,
        percent=row.percent,
        max_cost_usd_per_hour=row.max_cost_usd_per_hour,
        salt=row.salt,
    )
