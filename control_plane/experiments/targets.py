"""Performance targets: what a version's ``targets:`` promise, and what its runs measured.

A workflow's ``targets: {p95_latency_s, error_ratio, cost_per_run_usd}`` are part of each
version's definition. They are read from the stored (normalised JSON) definition, once per
digest: a digest names its content, so the cached targets can never go stale.

Two places show them, with the same three figures measured the same way as the alert rules
(``dashboards/prometheus/rules.yml``) measure them:

* the store gauges (``experiments.gauges``) export each serving version's targets, which the
  generic Prometheus rules compare with the measured series;
* the experiment results show, per arm, the figures over the experiment's ended runs next to the
  version's targets, each met or not. The error ratio is failed runs over ended runs (a run
  stopped by its budget ended, and did not fail), the cost per run is the dollars billed over
  ended runs, and the p95 latency is the nearest-rank 95th percentile of the ended runs'
  latencies (exact, where Prometheus interpolates within a histogram bucket).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Integer, case, func
from sqlmodel import Session, col, select

from control_plane.experiments.schemas import ExperimentPublic
from control_plane.rollouts.routing import read_pin
from control_plane.store.tables import RunRow

__all__ = ["TARGETS", "TargetFigure", "VersionTargets", "targets_of", "version_targets"]

Target = Literal["p95_latency_s", "error_ratio", "cost_per_run_usd"]
TARGETS: Final[tuple[Target, ...]] = ("p95_latency_s", "error_ratio", "cost_per_run_usd")
_ENDED: Final = ("succeeded", "failed", "budget_exceeded")
_CACHED: Final = 1024  # digests; a scrape reads only the serving versions'
_cache: dict[str, dict[str, float]] = {}


class TargetFigure(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: Target
    measured: float | None = Field(description="over the experiment's ended runs of the arm")
    target: float | None = Field(description="the version's `targets:` value, if it sets one")
    met: bool | None = Field(description="measured <= target; null without both")


class VersionTargets(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: str
    runs: int = Field(description="the arm's ended runs in the experiment")
    figures: list[TargetFigure]


def targets_of(digest: str, definition: str) -> dict[str, float]:
    """A version's targets (``{}``: none) from its normalised definition."""
    found = _cache.get(digest)
    if found is None:
        try:
            targets = json.loads(definition).get("targets") or {}
        except (ValueError, AttributeError):
            targets = {}
        found = {k: float(v) for k, v in targets.items() if k in TARGETS}
        if len(_cache) >= _CACHED:
            _cache.clear()  # rare (a thousand versions served), and refilled by one scrape
        _cache[digest] = found
    return found


def _p95(session: Session, experiment_id: int, arm: str) -> float | None:
    timed = (
        select(RunRow.latency_s)
        .where(RunRow.experiment_id == experiment_id, RunRow.arm == arm)
        .where(col(RunRow.status).in_(_ENDED), col(RunRow.latency_s).is_not(None))
    )
    count = session.exec(select(func.count()).select_from(timed.subquery())).one()
    if not count:
        return None
    rank = math.ceil(0.95 * count)  # nearest rank: the smallest value with 95 % at or below
    query = timed.order_by(col(RunRow.latency_s)).offset(rank - 1).limit(1)
    return session.exec(query).first()


def _measured(session: Session, experiment_id: int) -> dict[str, tuple[int, dict[str, Any]]]:
    """Per arm: its ended runs, and the three figures over them."""
    failed = func.sum(case((col(RunRow.status) == "failed", 1), else_=0), type_=Integer)
    query = (
        select(RunRow.arm, func.count(), failed, func.sum(RunRow.cost_usd))
        .where(RunRow.experiment_id == experiment_id, col(RunRow.status).in_(_ENDED))
        .group_by(col(RunRow.arm))
    )
    figures: dict[str, tuple[int, dict[str, Any]]] = {}
    for arm, runs, failures, cost in session.exec(query).all():
        if arm is None or not runs:
            continue
        figures[arm] = (
            runs,
            {
                "p95_latency_s": _p95(session, experiment_id, arm),
                "error_ratio": (failures or 0) / runs,
                "cost_per_run_usd": (cost or 0.0) / runs,
            },
        )
    return figures


def version_targets(session: Session, experiment: ExperimentPublic) -> list[VersionTargets]:
    """Each arm's measured figures next to its version's targets, baseline first."""
    arms: Sequence[str] = [experiment.baseline, *(str(a["version"]) for a in experiment.arms)]
    measured = _measured(session, experiment.id)
    shown = []
    for arm in arms:
        data = read_pin(session, workflow=experiment.workflow, version=arm)
        targets = targets_of(data.digest, data.definition)
        runs, values = measured.get(arm, (0, {}))
        figures = []
        for name in TARGETS:
            value, target = values.get(name), targets.get(name)
            met = None if value is None or target is None else value <= target
            figures.append(TargetFigure(name=name, measured=value, target=target, met=met))
        shown.append(VersionTargets(version=arm, runs=runs, figures=figures))
    return shown
