"""What the control plane does with an analysis: the verdict the evaluator acts on, which the
results, the stored decisions and the audit log all show, so they agree.

``analysis.decide`` judges numbers; the control plane adds what it alone knows (time, traffic,
absolute bounds, what a person acknowledged) and chooses which halts to act on:

* ``invalid_spec`` and ``srm`` halt at once: the numbers cannot be trusted, and the sample ratio
  check is always valid (Lindon & Malek 2022), so looking every 30 s does not make it cry wolf.
* ``no_traffic``: no run for ``no_traffic_timeout_s`` halts (routing or logging may be broken).
* ``metric_no_data`` (an arm has runs but no value of a required metric) halts only once the
  experiment is ``no_traffic_timeout_s`` old and the arm has ``min_runs_per_arm`` users:
  outcomes arrive after their runs, so at the start every experiment has runs without them.
* ``no_data`` (an arm without runs) never halts: every experiment starts so, and a 1 % ramp step
  may wait long for its first run. An arm that never gets its share is what the sample ratio
  check finds, and no traffic at all is ``no_traffic``. It reads "waiting for data; continue".
* A reason code a person resumed past (``acknowledged``) halts no more.

A halted experiment keeps routing at its step's shares; its ramp and rules wait for a person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from analysis.decision import Decision
from control_plane.experiments.results import ExperimentResults, analyse, to_public
from control_plane.experiments.schemas import ExperimentCreate, ExperimentPublic
from control_plane.experiments.targets import VersionTargets, version_targets
from control_plane.kit.time import UtcDatetime, as_utc, utcnow
from control_plane.store.tables import ExperimentDecisionRow, RunRow

__all__ = ["ExperimentView", "Verdict", "duration", "last_run_at", "reason", "verdict", "view"]

_HALT_AT_ONCE = ("invalid_spec", "srm")


def reason(
    code: str, message: str, arm: str | None = None, metric: str | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "arm": arm, "metric": metric}


def duration(seconds: float) -> str:
    """Seconds under a minute ("10 s", "0.5 s"), minutes under an hour ("1.5 min"), else
    hours ("2 h"): the unit of the figure itself, never "0 min" for 10 s."""
    if seconds < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the control plane does now: ``action`` (promote | rollback | continue | halt),
    the ``winner`` of a promotion, the ``reasons`` (code, message, arm, metric), acted ones
    first, ``halts`` the reasons a halt acts on, and ``final``: a fixed-horizon test at its
    planned size, read once."""

    action: str
    winner: str | None
    reasons: list[dict[str, Any]]
    final: bool = False
    halts: tuple[dict[str, Any], ...] = ()


def last_run_at(session: Session, experiment_id: int) -> datetime | None:
    latest = session.exec(
        select(func.max(RunRow.created_at)).where(RunRow.experiment_id == experiment_id)
    ).first()
    return as_utc(latest) if latest is not None else None


def _crossed_bounds(
    experiment: ExperimentPublic, metrics: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Reasons for each candidate metric beyond an absolute bound after enough runs."""
    candidates = {str(a["version"]) for a in experiment.arms}
    crossed = []
    for bound in experiment.config.bounds:
        for row in metrics:
            if row["arm"] not in candidates or row["metric"] != bound.metric:
                continue
            mean, n = row.get("mean"), int(row["n"])
            if mean is None or n < bound.after_runs:
                continue
            low = bound.min is not None and mean < bound.min
            high = bound.max is not None and mean > bound.max
            if low or high:
                limit = f"at least {bound.min:g}" if low else f"at most {bound.max:g}"
                words = (f"{row['arm']}'s {bound.metric} is {mean:.4g} after {n} runs; "
                         f"the bound is {limit}: roll back")  # fmt: skip
                crossed.append(reason("bound_crossed", words, row["arm"], bound.metric))
    return crossed


def _units(decision: Decision, arm: str | None) -> int:
    observed = decision.srm.observed if decision.srm is not None else {}
    return int(observed.get(arm or "", 0))


def _sort_halts(
    experiment: ExperimentPublic, decision: Decision, age_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The analysis' reasons split into the halts acted on and the rest (the halts not acted
    on reworded as what they are: waiting, or acknowledged)."""
    config: ExperimentCreate = experiment.config
    acting: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for r in decision.reasons:
        here = reason(r.code, r.message, r.arm, r.metric)
        if r.code in experiment.acknowledged:
            here["message"] = f"{r.message} (acknowledged when it was resumed: no halt)"
            rest.append(here)
        elif r.code in _HALT_AT_ONCE:
            acting.append(here)
        elif r.code == "metric_no_data":
            units = _units(decision, r.arm)
            if age_s >= config.no_traffic_timeout_s and units >= config.min_runs_per_arm:
                here["message"] = (
                    f"{r.arm} has {units:,} users but no {r.metric} data after "
                    f"{duration(age_s)}: its outcomes are not arriving; halt"
                )
                acting.append(here)
            else:
                here["message"] = (
                    f"{r.arm} has no {r.metric} data yet: outcomes arrive after their runs, so "
                    f"this halts only after {duration(config.no_traffic_timeout_s)} and "
                    f"{config.min_runs_per_arm} users in the arm; continue"
                )
                rest.append(here)
        elif r.code == "no_data":
            here["message"] = f"{r.arm} has no runs yet: waiting for data; continue"
            rest.append(here)
        else:
            rest.append(here)
    return acting, rest


def verdict(
    experiment: ExperimentPublic,
    decision: Decision,
    metrics: list[dict[str, Any]],
    *,
    last_run: datetime | None,
    now: datetime,
) -> Verdict:
    """The verdict on a running experiment (see the module docstring); ``metrics`` are the
    results' rows (``to_public``), ``last_run`` when its latest run was stored."""
    config: ExperimentCreate = experiment.config
    age_s = (now - as_utc(experiment.created_at)).total_seconds()
    acting, rest = _sort_halts(experiment, decision, age_s)
    idle = (now - (last_run or as_utc(experiment.created_at))).total_seconds()
    if idle > config.no_traffic_timeout_s:
        words = f"no run for {duration(idle)} (timeout {duration(config.no_traffic_timeout_s)})"
        if "no_traffic" in experiment.acknowledged:
            rest.insert(0, reason("no_traffic", f"{words}; acknowledged when it was resumed"))
        else:
            acting.insert(0, reason("no_traffic", f"{words}: halt"))
    if acting:
        return Verdict("halt", None, acting + rest, halts=tuple(acting))
    action = "continue" if decision.action == "halt" else decision.action
    crossed = _crossed_bounds(experiment, metrics)
    if crossed:
        return Verdict("rollback", None, crossed + rest)
    winner = decision.winner if action == "promote" else None
    return Verdict(action, winner, rest, decision.final)


class ExperimentView(ExperimentResults):
    """The results with what the control plane does or did: while it runs, the verdict now;
    halted or ended, the decision that put it there. ``analysis`` is what the analysis alone
    says on the data now."""

    applied: str | None = Field(
        default=None,
        description="what put it in its status: halt | rollback | promote | end | stop",
    )
    decided_at: UtcDatetime | None = None
    analysis: dict[str, Any] = Field(description="the analysis' own action, winner and reasons")
    targets: list[VersionTargets] = Field(
        default_factory=list,
        description="per arm: p95 latency, error ratio and cost per run over its ended runs, "
        "next to its version's `targets:`, each met or not",
    )


_APPLIED = {"halted": "halt", "rolled_back": "rollback", "promoted": "promote", "stopped": "end"}


def _acted(session: Session, experiment_id: int, applied: str) -> ExperimentDecisionRow | None:
    """The latest decision that applied ``applied`` to the experiment."""
    return session.exec(
        select(ExperimentDecisionRow)
        .where(
            ExperimentDecisionRow.experiment_id == experiment_id,
            ExperimentDecisionRow.applied == applied,
        )
        .order_by(col(ExperimentDecisionRow.id).desc())
        .limit(1)
    ).first()


def view(session: Session, *, experiment_id: int, now: datetime | None = None) -> ExperimentView:
    """``GET /v1/experiments/{id}/results``."""
    experiment, decision, cuped, runs = analyse(session, experiment_id=experiment_id)
    public = to_public(experiment, decision, cuped, runs).model_dump()
    analysis = {k: public[k] for k in ("action", "winner", "reasons")}
    shown: dict[str, Any] = {"applied": None, "decided_at": None}
    row = None
    if experiment.status == "running":
        last = last_run_at(session, experiment_id)
        v = verdict(experiment, decision, public["metrics"], last_run=last, now=now or utcnow())
        shown.update(action=v.action, winner=v.winner, reasons=v.reasons)
    else:
        row = _acted(session, experiment_id, _APPLIED[experiment.status])
    if row is not None:
        winner = row.statistics.get("winner") if row.action == "promote" else None
        shown.update(action=row.action, winner=winner, reasons=list(row.reasons))
        shown.update(applied=row.applied, decided_at=row.at)
    elif experiment.status == "stopped":  # by a person (or a decision from before this view)
        words = experiment.outcome or "stopped by hand"
        shown.update(action="stop", winner=None, reasons=[reason("stopped", words)])
        shown.update(applied="stop", decided_at=experiment.ended_at)
    targets = version_targets(session, experiment)
    return ExperimentView(**{**public, **shown, "analysis": analysis, "targets": targets})
