"""Per-arm sufficient statistics in the store, updated as runs and outcomes arrive.

Each observation adds 1 to ``n``, the value to ``total`` and its square to ``total_sq`` of the
row (experiment, ramp step, arm, metric), in the transaction that stores the run or outcome. The
update is an upsert on both databases, so concurrent writers (worker processes) neither lose an
increment nor race on the first insert. A proportion's values are 0 or 1, so ``total`` counts
the successes.

Functions take the caller's ``Session`` and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from control_plane.experiments.schemas import BUILTIN_METRICS
from control_plane.store.tables import ArmStatRow, RunRow

__all__ = ["add_observation", "add_run_facts", "stats_of"]

_table: Table = ArmStatRow.__table__  # type: ignore[attr-defined]


def add_observation(
    session: Session,
    *,
    experiment_id: int,
    step: int,
    arm: str,
    metric: str,
    kind: str,
    value: float,
) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
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
        )


def stats_of(session: Session, experiment_id: int) -> Sequence[ArmStatRow]:
    query = select(ArmStatRow).where(ArmStatRow.experiment_id == experiment_id)
    return session.exec(query).all()
