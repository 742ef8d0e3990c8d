"""Gauges read from the store at scrape time: rollout shares and experiment p-values.

They describe state, not events, and every worker reads the same store, so they are computed
on the scrape by whichever worker answers it: no per-process copies to merge, and an archived
version or an ended experiment disappears from the next scrape by itself.

* ``rollgraph_rollout_share_ratio{workflow,label,version,role}``: the share (0–1) of the
  label's traffic each version is configured to get: a running experiment's arms, else the
  label's rollout candidates (``role="candidate"``); the label's own version gets the remainder
  (``role="baseline"``, so alerts can compare a candidate with its baseline). Archived versions
  are left out (they serve no traffic), and so are candidates that no longer serve.
* ``rollgraph_experiment_info{experiment,name,workflow,label,baseline}`` (1 per running or
  halted experiment: joins an experiment id to its workflow and label; a halted one still
  routes, and its sample ratio alert must keep firing until a person resumes or stops it),
  ``rollgraph_experiment_step_started_timestamp_seconds{experiment}`` (when the current ramp
  step began) and ``rollgraph_experiment_ramp_steps_remaining{experiment}`` (steps still ahead;
  0 without a ramp): together they tell a ramp that stopped advancing.
* ``rollgraph_target_p95_latency_seconds``, ``rollgraph_target_error_ratio`` and
  ``rollgraph_target_cost_per_run_usd``, each ``{workflow,version}``: the ``targets:`` of each
  version a label routes to (``experiments.targets``), for the generic alert rules that compare
  the measured series with them. Versions no label routes to serve pins only, and are left out
  so that the series stay as few as the versions in service.
* ``rollgraph_experiment_p_value{experiment,arm,metric}`` and
  ``rollgraph_experiment_srm_p_value{experiment}``: from the latest stored decision of each
  running or halted experiment (``experiment`` is its id).

A store that cannot be read leaves these gauges out of the scrape (logged) rather than failing
it: the process's own counters are still worth collecting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel import Session, col, select

from control_plane.experiments.targets import TARGETS, targets_of
from control_plane.kit.time import as_utc
from control_plane.rollouts.routing import VersionData, read_route
from control_plane.store.db import SessionFactory, session_scope
from control_plane.store.tables import ExperimentDecisionRow, ExperimentRow, LabelRow, WorkflowRow
from control_plane.workflows.ownership import OWNING

__all__ = ["StoreCollector"]

log = logging.getLogger(__name__)

ROLLOUT_SHARE = "rollgraph_rollout_share_ratio"
P_VALUE = "rollgraph_experiment_p_value"
SRM_P_VALUE = "rollgraph_experiment_srm_p_value"
EXPERIMENT_INFO = "rollgraph_experiment_info"
STEP_STARTED = "rollgraph_experiment_step_started_timestamp_seconds"
STEPS_REMAINING = "rollgraph_experiment_ramp_steps_remaining"
# Each target's gauge, in the order of experiments.targets.TARGETS.
TARGET_GAUGES = (
    ("rollgraph_target_p95_latency_seconds", "95th percentile of a run's latency"),
    ("rollgraph_target_error_ratio", "share (0-1] of runs that fail"),
    ("rollgraph_target_cost_per_run_usd", "dollars billed per run"),
)


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            ROLLOUT_SHARE,
            "Configured share (0-1) of a label's traffic per active version; role is baseline "
            "(the label's version) or candidate",
            labels=("workflow", "label", "version", "role"),
        ),
        GaugeMetricFamily(
            P_VALUE,
            "p-value of a candidate arm against the baseline, from the latest decision of a "
            "running experiment",
            labels=("experiment", "arm", "metric"),
        ),
        GaugeMetricFamily(
            SRM_P_VALUE,
            "Sample-ratio-mismatch p-value from the latest decision of a running experiment",
            labels=("experiment",),
        ),
        GaugeMetricFamily(
            EXPERIMENT_INFO,
            "1 per running experiment, labelled with its name, workflow, label and baseline",
            labels=("experiment", "name", "workflow", "label", "baseline"),
        ),
        GaugeMetricFamily(
            STEP_STARTED,
            "Unix time at which a running experiment's current ramp step began",
            labels=("experiment",),
        ),
        GaugeMetricFamily(
            STEPS_REMAINING,
            "Ramp steps still ahead of a running experiment (0 without a ramp or at its last)",
            labels=("experiment",),
        ),
        *(
            GaugeMetricFamily(
                name,
                f"The workflow version's target: {words} at most (its definition's `targets:`)",
                labels=("workflow", "version"),
            )
            for name, words in TARGET_GAUGES
        ),
    )


def _shares(session: Session) -> Iterator[tuple[str, str, str, str, float, VersionData]]:
    labels = session.exec(
        select(WorkflowRow.name, LabelRow.name)
        .join(LabelRow, col(LabelRow.workflow_id) == col(WorkflowRow.id))
        .order_by(col(WorkflowRow.name), col(LabelRow.name))
    ).all()
    for workflow, label in labels:
        route = read_route(session, workflow=workflow, label=label)
        allocation = route.allocation
        candidates = [(arm.version, arm.share) for arm in allocation.candidates]
        rest = max(0.0, 1.0 - math.fsum(share for _, share in candidates))
        roles = [(allocation.baseline, "baseline", rest)]
        roles += [(version, "candidate", share) for version, share in candidates]
        for version, role, share in roles:
            data = route.versions.get(version)
            if data is not None and data.status == "active":
                yield workflow, label, version, role, share, data


def _running(session: Session) -> Iterator[tuple[ExperimentRow, str]]:
    rows = session.exec(
        select(ExperimentRow, WorkflowRow.name)
        .join(WorkflowRow, col(WorkflowRow.id) == col(ExperimentRow.workflow_id))
        .where(col(ExperimentRow.status).in_(OWNING))
        .order_by(col(ExperimentRow.id))
    ).all()
    yield from rows


def _steps_remaining(row: ExperimentRow) -> int:
    ramp = row.config.get("ramp") or ()
    return max(0, len(ramp) - 1 - row.step)


def _latest_statistics(session: Session, experiment_id: int | None) -> dict[str, Any] | None:
    latest = session.exec(
        select(ExperimentDecisionRow)
        .where(ExperimentDecisionRow.experiment_id == experiment_id)
        .order_by(col(ExperimentDecisionRow.id).desc())
        .limit(1)
    ).first()
    return None if latest is None else latest.statistics


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class StoreCollector(Collector):
    """Computes the store-backed gauges on each scrape, in one short read-only unit of work."""

    def __init__(self, session_factory: Callable[[], SessionFactory | None]) -> None:
        # A callable: the session factory exists only once the app's lifespan has started.
        self._session_factory = session_factory

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return _families()  # names only: registering must not read the store

    def collect(self) -> Iterable[GaugeMetricFamily]:
        factory = self._session_factory()
        if factory is None:
            return []
        families = _families()
        shares, p_values, srm, info, step_started, remaining, *targets = families
        try:
            with session_scope(factory) as session:
                serving: dict[tuple[str, str], VersionData] = {}
                for workflow, label, version, role, share, data in _shares(session):
                    shares.add_metric([workflow, label, version, role], share)
                    serving[workflow, version] = data
                for (workflow, version), data in serving.items():
                    found = targets_of(data.digest, data.definition)
                    for name, family in zip(TARGETS, targets, strict=True):
                        if name in found:
                            family.add_metric([workflow, version], found[name])
                for row, workflow in _running(session):
                    ident = str(row.id)
                    info.add_metric([ident, row.name, workflow, row.label, row.baseline], 1)
                    step_started.add_metric([ident], as_utc(row.step_started_at).timestamp())
                    remaining.add_metric([ident], _steps_remaining(row))
                    statistics = _latest_statistics(session, row.id)
                    if statistics is None:
                        continue
                    for metric in statistics.get("metrics") or ():
                        p = _finite(metric.get("p_value"))
                        if p is not None:
                            labels = [ident, str(metric["arm"]), metric["metric"]]
                            p_values.add_metric(labels, p)
                    srm_p = _finite((statistics.get("srm") or {}).get("p_value"))
                    if srm_p is not None:
                        srm.add_metric([ident], srm_p)
        except Exception:  # the store may be away: the process's own metrics still count
            log.exception("reading the store for /metrics failed")
            return []
        return list(families)
