"""Per-arm sufficient statistics in the store, updated as runs and outcomes arrive.

Users are randomised, so users are the unit of analysis: a user who runs a hundred times is one
unit, not a hundred. Each observation of a unit (a user, or a run without a user id) updates, in
the transaction that stores the run or outcome:

* the unit's row (``experiment_unit``): its count N and total S for (experiment, ramp step, arm,
  metric), by an upsert that returns the new values, so the old ones are known exactly;
* the arm's sums over units (``arm_unit_stat``): units, ΣN, ΣS, ΣN², ΣS², ΣSN, each moved by
  the difference this observation made to the unit's terms (a new unit adds one to ``units``);
* the arm's run-level sums (``arm_stat``: n, Σx, Σx²), kept for experiments started before the
  unit tables existed.

With CUPED on (``cuped: true``), a unit's first observation of a metric also fixes its
pre-exposure covariate X (``pre_exposure``: its mean of the metric before the experiment
started) on its row, and the arm keeps ΣX, ΣX², ΣXS, ΣXN over units (``analysis.cuped``).

Every update is an upsert on both databases, so concurrent writers neither lose an increment
nor race on a first insert; on PostgreSQL the unit row's lock orders two writers of the same
unit, so the differences they apply add up. A proportion's values are 0 or 1.

Observations are applied when their transaction commits, not when they are added: the group
commit writes hundreds of runs of both arms in one transaction, in the order they finished, and
two replicas' batches locking the same arm rows in opposite orders deadlocked on PostgreSQL
(a 503 for every run of the losing batch). At commit the unit rows are upserted in key order,
then each arm row once with the sum of its deltas, in key order, so every transaction takes
these locks in one global order, last, when it waits for nothing else.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, case, event, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from control_plane.experiments.schemas import BUILTIN_METRICS
from control_plane.store.tables import (
    ArmStatRow,
    ArmUnitStatRow,
    ExperimentRow,
    ExperimentUnitRow,
    OutcomeRow,
    RunRow,
    WorkflowRow,
)

__all__ = [
    "add_observation",
    "add_run_facts",
    "pre_exposure",
    "stats_of",
    "unit_of",
    "unit_stats_of",
]

_table: Table = ArmStatRow.__table__  # type: ignore[attr-defined]
_units: Table = ExperimentUnitRow.__table__  # type: ignore[attr-defined]
_arm_units: Table = ArmUnitStatRow.__table__  # type: ignore[attr-defined]


_PENDING = "rollgraph.experiment_observations"
_KEYS = ("experiment_id", "step", "arm", "metric")  # an arm row's key, in its index's order


@dataclass(frozen=True, slots=True)
class _Observation:
    experiment_id: int
    step: int
    arm: str
    metric: str
    kind: str
    unit: str
    value: float


def add_observation(
    session: Session,
    *,
    experiment_id: int,
    step: int,
    arm: str,
    metric: str,
    kind: str,
    value: float,
    unit: str,
) -> None:
    """Count one value of ``unit`` in its arm, when ``session`` commits (see the module
    docstring); a rollback forgets it."""
    # Begin the transaction now (if the caller has not), so that a rollback, which fires no
    # event without one, forgets these observations.
    session.connection()
    if _PENDING not in session.info:
        session.info[_PENDING] = []
        event.listen(session, "before_commit", _apply_pending)
        event.listen(session, "after_soft_rollback", _forget_pending)
    session.info[_PENDING].append(_Observation(experiment_id, step, arm, metric, kind, unit, value))


def _forget_pending(session: Session, _previous: Any) -> None:
    session.info.get(_PENDING, []).clear()


def _apply_pending(session: Session) -> None:
    pending: list[_Observation] = session.info.get(_PENDING, [])
    if not pending:
        return
    observations = sorted(pending, key=lambda o: (o.experiment_id, o.step, o.arm, o.metric, o.unit))
    pending.clear()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    arm_deltas: dict[tuple[int, int, str, str], tuple[str, dict[str, float]]] = {}
    run_level: dict[tuple[int, int, str, str], tuple[str, list[float]]] = {}
    for o in observations:
        key = (o.experiment_id, o.step, o.arm, o.metric)
        keys = dict(zip(_KEYS, key, strict=True))
        deltas = _add_to_unit(session, dialect, keys=keys, unit=o.unit, value=o.value)
        _, sums = arm_deltas.setdefault(key, (o.kind, dict.fromkeys(deltas, 0.0)))
        for name, delta in deltas.items():
            sums[name] += delta
        _, moments = run_level.setdefault(key, (o.kind, [0.0, 0.0, 0.0]))
        moments[0] += 1
        moments[1] += o.value
        moments[2] += o.value * o.value
    for key, (kind, sums) in sorted(arm_deltas.items()):
        keys = dict(zip(_KEYS, key, strict=True))
        counts = {name: int(sums[name]) for name in ("units", "covered")}
        values = {**sums, **counts}
        statement = dialect.insert(_arm_units).values(**keys, kind=kind, **values)
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: _arm_units.c[name] + delta for name, delta in values.items()},
        )
        session.execute(statement)
    for key, (kind, (n, total, total_sq)) in sorted(run_level.items()):
        keys = dict(zip(_KEYS, key, strict=True))
        statement = dialect.insert(_table).values(
            **keys, kind=kind, n=int(n), total=total, total_sq=total_sq
        )
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={
                "n": _table.c.n + int(n),
                "total": _table.c.total + total,
                "total_sq": _table.c.total_sq + total_sq,
            },
        )
        session.execute(statement)


def _add_to_unit(
    session: Session, dialect: Any, *, keys: dict[str, Any], unit: str, value: float
) -> dict[str, float]:
    """Upsert the unit's row; the differences this value makes to the arm's sums."""
    upsert = dialect.insert(_units).values(**keys, unit=unit, n=1, total=value)
    upsert = upsert.on_conflict_do_update(
        index_elements=[*keys, "unit"],
        set_={"n": _units.c.n + 1, "total": _units.c.total + value},
    ).returning(_units.c.n, _units.c.total, _units.c.covariate)
    n, total, covariate = session.execute(upsert).one()
    # The unit's terms before and after this observation: (N, S) → (N + 1, S + value).
    old_n, old_s = n - 1, total - value
    first = 1 if old_n == 0 else 0
    covered = 0
    if first:
        # Fixed once, at the unit's first observation, in the transaction that inserted its
        # row: a concurrent writer of the same unit waits on that row and reads it back.
        found = pre_exposure(session, experiment_id=keys["experiment_id"], unit=unit,
                             metric=keys["metric"])  # fmt: skip
        if found is not None:
            covariate, covered = found[0], int(found[1] > 0)
            where = [_units.c[name] == key for name, key in {**keys, "unit": unit}.items()]
            session.execute(update(_units).where(*where).values(covariate=covariate))
    x = float(covariate) if covariate is not None else 0.0
    return {
        "units": float(first),
        "sum_n": 1.0,
        "sum_s": value,
        "sum_nn": float(n * n - old_n * old_n),
        "sum_ss": total * total - old_s * old_s,
        "sum_sn": total * n - old_s * old_n,
        # X is fixed: ΣX and ΣX² move when the unit appears, ΣXS and ΣXN with every value.
        "sum_x": x * first,
        "sum_xx": x * x * first,
        "sum_xs": x * value,
        "sum_xn": x,
        "covered": float(covered),
    }


def pre_exposure(
    session: Session, *, experiment_id: int, unit: str, metric: str
) -> tuple[float, int] | None:
    """CUPED's covariate for ``unit`` (``analysis.cuped``): the mean of ``metric`` over the
    user's runs of the experiment's workflow created before the experiment started (for a
    built-in fact, over its finished runs; for an outcome, over its recorded values), and how
    many values it averages; (0, 0) without any. ``None`` when the experiment does not use
    CUPED. A run without a user id is its own unit and has no history."""
    experiment = session.get(ExperimentRow, experiment_id)
    if experiment is None or not experiment.config.get("cuped", False):
        return None
    if not unit.startswith("user:"):
        return 0.0, 0
    workflow = session.get(WorkflowRow, experiment.workflow_id)
    assert workflow is not None  # an experiment names a workflow that exists
    earlier = [
        col(RunRow.workflow) == workflow.name,
        col(RunRow.user_id) == unit.removeprefix("user:"),
        col(RunRow.created_at) < experiment.created_at,
    ]
    value: Any
    if metric in BUILTIN_METRICS:
        earlier.append(col(RunRow.status).in_(("succeeded", "failed", "budget_exceeded")))
        value = {
            "success": case((col(RunRow.status) == "succeeded", 1.0), else_=0.0),
            "latency_s": col(RunRow.latency_s),
            "cost_usd": col(RunRow.cost_usd),
        }[metric]
        query = select(func.avg(value), func.count(value)).where(*earlier)
    else:
        value = col(OutcomeRow.value)
        query = (
            select(func.avg(value), func.count(value))
            .join(RunRow, col(RunRow.id) == col(OutcomeRow.run_id))
            .where(col(OutcomeRow.metric) == metric, *earlier)
        )
    mean, count = session.execute(query).one()
    return (float(mean), int(count)) if count else (0.0, 0)


def add_run_facts(session: Session, run: RunRow) -> None:
    """Count a run's engine facts in its experiment arm: success, latency and cost. Only a
    run's first ending counts: a resume repairs a run, it is not another observation."""
    if run.experiment_id is None or run.arm is None or run.attempt != 1:
        return
    facts = {
        "success": 1.0 if run.status == "succeeded" else 0.0,
        "cost_usd": float(run.cost_usd),
    }
    if run.latency_s is not None:
        facts["latency_s"] = float(run.latency_s)
    for metric, value in facts.items():
        add_observation(
            session,
            experiment_id=run.experiment_id,
            step=run.experiment_step or 0,
            arm=run.arm,
            metric=metric,
            kind=BUILTIN_METRICS[metric],
            value=value,
            unit=unit_of(run),
        )


def unit_of(run: RunRow) -> str:
    """The unit a run counts for: its user, else the run itself (requests without a user id
    are randomised one by one)."""
    return f"user:{run.user_id}" if run.user_id is not None else f"run:{run.id}"


def stats_of(session: Session, experiment_id: int) -> Sequence[ArmStatRow]:
    query = select(ArmStatRow).where(ArmStatRow.experiment_id == experiment_id)
    return session.exec(query).all()


def unit_stats_of(session: Session, experiment_id: int) -> Sequence[ArmUnitStatRow]:
    query = select(ArmUnitStatRow).where(ArmUnitStatRow.experiment_id == experiment_id)
    return session.exec(query).all()
