"""Per-arm sufficient statistics in the store, updated as runs and outcomes arrive.

Users are randomised, so users are the unit of analysis: a user who runs a hundred times is one
unit, not a hundred. Each observation of a unit (a user, or a run without a user id) updates, in
the transaction that stores the run or outcome:

* the unit's row (``experiment_unit``): its count N and total S for (experiment, ramp step, arm,
  metric), by an upsert that returns the new values, so the old ones are known exactly;
* the arm's sums over units (``arm_unit_stat``): units, ΣN, ΣS, ΣN², ΣS², ΣSN, each moved by
  the difference this observation made to the unit's terms (a new unit adds one to ``units``).

The run-level sums of ``arm_stat`` (n, Σx, Σx²) are no longer written: the analysis reads them
only for an experiment that has no unit rows at all, that is one that has seen no observation
since the unit tables exist, and every observation writes unit rows. Writing them cost a
statement per batch on the same hot rows.

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
    observations = list(pending)
    pending.clear()
    # The batch's own rows first (runs, traces), so the shared arm rows are locked last.
    session.flush()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # A unit observed several times in one batch is one row of the upsert (one statement may
    # not change a row twice): its count and total move by the batch's, which is all the arm's
    # sums need (they depend on the unit's terms before and after, not on the steps between).
    per_unit: dict[tuple[int, int, str, str, str], list[float]] = {}
    kinds: dict[tuple[int, int, str, str], str] = {}
    for o in observations:
        key = (o.experiment_id, o.step, o.arm, o.metric)
        kinds[key] = o.kind
        seen = per_unit.setdefault((*key, o.unit), [0.0, 0.0])
        seen[0] += 1
        seen[1] += o.value
    # Which experiments use CUPED, read once per batch: a lookup per observation cost a
    # SELECT each (the identity map holds rows weakly), a third of a writer's time.
    cuped = _cuped_experiments(session, {o.experiment_id for o in observations})
    arm_deltas: dict[tuple[int, int, str, str], dict[str, float]] = {}
    for unit_key, (k, added), (n, total, covariate) in _upsert_units(session, dialect, per_unit):
        with_history = unit_key[0] in cuped
        deltas = _unit_deltas(session, unit_key, k, added, n, total, covariate, with_history)
        sums = arm_deltas.setdefault(unit_key[:4], dict.fromkeys(deltas, 0.0))
        for name, delta in deltas.items():
            sums[name] += delta
    # Each arm row once, in key order, after every unit row: one lock order for every writer,
    # in one statement: under load a round trip to the store costs more than the rows.
    rows = [
        {**dict(zip(_KEYS, key, strict=True)), "kind": kinds[key], **sums,
         "units": int(sums["units"]), "covered": int(sums["covered"])}
        for key, sums in sorted(arm_deltas.items())
    ]  # fmt: skip
    if rows:
        upsert = dialect.insert(_arm_units).values(rows)
        upsert = upsert.on_conflict_do_update(
            index_elements=list(_KEYS),
            set_={name: _arm_units.c[name] + upsert.excluded[name] for name in _ARM_UNIT_SUMS},
        )
        session.execute(upsert)


_ARM_UNIT_SUMS = (
    "units", "sum_n", "sum_s", "sum_nn", "sum_ss", "sum_sn",
    "sum_x", "sum_xx", "sum_xs", "sum_xn", "covered",
)  # fmt: skip
_UnitKey = tuple[int, int, str, str, str]  # experiment, step, arm, metric, unit
_UNIT_COLUMNS = (*_KEYS, "unit")
# Rows per upsert statement: 7 parameters each, far below either database's limit on
# parameters, and a batch of 256 runs of 3 facts each in two statements.
_CHUNK = 500


def _upsert_units(
    session: Session, dialect: Any, per_unit: dict[_UnitKey, list[float]]
) -> list[tuple[_UnitKey, list[float], tuple[int, float, float | None]]]:
    """Every unit row of the batch moved by its count and total, in key order (the order in
    which the rows are locked), one statement per chunk instead of one per observation; each
    unit with what it added and its row's new (n, total, covariate)."""
    ordered = sorted(per_unit)
    moved: list[tuple[_UnitKey, list[float], tuple[int, float, float | None]]] = []
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i : i + _CHUNK]
        rows = [
            {**dict(zip(_UNIT_COLUMNS, key, strict=True)), "n": int(per_unit[key][0]),
             "total": per_unit[key][1]}
            for key in chunk
        ]  # fmt: skip
        upsert = dialect.insert(_units).values(rows)
        upsert = upsert.on_conflict_do_update(
            index_elements=list(_UNIT_COLUMNS),
            set_={
                "n": _units.c.n + upsert.excluded.n,
                "total": _units.c.total + upsert.excluded.total,
            },
        ).returning(*(_units.c[name] for name in _UNIT_COLUMNS), _units.c.n,
                    _units.c.total, _units.c.covariate)  # fmt: skip
        # RETURNING's row order is not promised: match the rows by their key.
        after = {tuple(row[:5]): (int(row[5]), float(row[6]), row[7])
                 for row in session.execute(upsert)}  # fmt: skip
        moved += [(key, per_unit[key], after[key]) for key in chunk]
    return moved


def _unit_deltas(
    session: Session,
    unit_key: _UnitKey,
    k: float,
    added: float,
    n: int,
    total: float,
    covariate: float | None,
    cuped: bool,
) -> dict[str, float]:
    """The differences a unit's ``k`` new values summing to ``added`` made to the arm's sums,
    from its row's terms after them, (N, S), and so before them, (N - k, S - added).
    ``cuped``: the experiment fixes each unit's covariate at its first observation."""
    old_n, old_s = n - int(k), total - added
    first = 1 if old_n == 0 else 0
    covered = 0
    experiment_id, _, _, metric, unit = unit_key
    if first and cuped:
        # Fixed once, at the unit's first observation, in the transaction that inserted its
        # row: a concurrent writer of the same unit waits on that row and reads it back.
        found = pre_exposure(session, experiment_id=experiment_id, unit=unit, metric=metric)
        if found is not None:
            covariate, covered = found[0], int(found[1] > 0)
            where = [_units.c[c] == v for c, v in zip(_UNIT_COLUMNS, unit_key, strict=True)]
            session.execute(update(_units).where(*where).values(covariate=covariate))
    x = float(covariate) if covariate is not None else 0.0
    return {
        "units": float(first),
        "sum_n": k,
        "sum_s": added,
        "sum_nn": float(n * n - old_n * old_n),
        "sum_ss": total * total - old_s * old_s,
        "sum_sn": total * n - old_s * old_n,
        # X is fixed: ΣX and ΣX² move when the unit appears, ΣXS and ΣXN with every value.
        "sum_x": x * first,
        "sum_xx": x * x * first,
        "sum_xs": x * added,
        "sum_xn": x * k,
        "covered": float(covered),
    }


def _cuped_experiments(session: Session, ids: set[int]) -> set[int]:
    """Which of ``ids`` use CUPED. An experiment's configuration never changes once started,
    so the answer is kept on the database connection (one store, so ids cannot collide) and
    read from the store once per experiment, not once per batch."""
    known: dict[int, bool] = session.connection().info.setdefault(_CUPED_CACHE, {})
    missing = ids - known.keys()
    if missing:
        rows = session.execute(
            select(ExperimentRow.id, ExperimentRow.config).where(col(ExperimentRow.id).in_(missing))
        )
        for experiment_id, config in rows:
            known[int(experiment_id)] = bool(config.get("cuped", False))
    return {i for i in ids if known.get(i, False)}


_CUPED_CACHE = "rollgraph.cuped_experiments"


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
