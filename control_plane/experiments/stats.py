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

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, case, func, update
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
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    _add_to_unit(
        session,
        dialect,
        keys={"experiment_id": experiment_id, "step": step, "arm": arm, "metric": metric},
        kind=kind,
        unit=unit,
        value=value,
    )
    values = {
        "experiment_id": experiment_id,
        "step": step,
        "arm": arm,
        "metric": metric,
        "kind": kind,
        "n": 1,
        "total": value,
        "total_sq": value * value,
    }
    statement = dialect.insert(_table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["experiment_id", "step", "arm", "metric"],
        set_={
            "n": _table.c.n + 1,
            "total": _table.c.total + value,
            "total_sq": _table.c.total_sq + value * value,
        },
    )
    session.execute(statement)


def _add_to_unit(
    session: Session, dialect: Any, *, keys: dict[str, Any], kind: str, unit: str, value: float
) -> None:
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
    deltas = {
        "units": first,
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
        "covered": covered,
    }
    statement = dialect.insert(_arm_units).values(**keys, kind=kind, **deltas)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: _arm_units.c[name] + delta for name, delta in deltas.items()},
    )
    session.execute(statement)


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
        earlier.append(col(RunRow.status).in_(("succeeded", "failed")))
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
