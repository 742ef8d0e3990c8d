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

Every update is an upsert on both databases, so concurrent writers neither lose an increment
nor race on a first insert; on PostgreSQL the unit row's lock orders two writers of the same
unit, so the differences they apply add up. A proportion's values are 0 or 1.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from control_plane.experiments.schemas import BUILTIN_METRICS
from control_plane.store.tables import ArmStatRow, ArmUnitStatRow, ExperimentUnitRow, RunRow

__all__ = ["add_observation", "add_run_facts", "stats_of", "unit_of", "unit_stats_of"]

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
    ).returning(_units.c.n, _units.c.total)
    n, total = session.execute(upsert).one()
    # The unit's terms before and after this observation: (N, S) → (N + 1, S + value).
    old_n, old_s = n - 1, total - value
    first = 1 if old_n == 0 else 0
    deltas = {
        "units": first,
        "sum_n": 1.0,
        "sum_s": value,
        "sum_nn": float(n * n - old_n * old_n),
        "sum_ss": total * total - old_s * old_s,
        "sum_sn": total * n - old_s * old_n,
    }
    statement = dialect.insert(_arm_units).values(**keys, kind=kind, **deltas)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: _arm_units.c[name] + delta for name, delta in deltas.items()},
    )
    session.execute(statement)


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
