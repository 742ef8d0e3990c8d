"""Two transactions counting runs of both arms in opposite orders (two replicas' group commits)
both commit, and the arm sums are the sum of both.

Before, each observation upserted its arm's row when it was added, so the first transaction
held arm A's row waiting for B's while the second held B's waiting for A's: PostgreSQL's
deadlock detector aborted one (a 503 ``store_unavailable`` for every run of that batch; ten in
a 10-minute soak). Observations are now applied at commit, in key order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from control_plane.experiments.stats import add_observation
from control_plane.store.db import create_db_engine
from control_plane.store.tables import ArmStatRow, ArmUnitStatRow, ExperimentUnitRow
from tests.fixtures import GREET, GREET_LARGE, seed_workflow

EXPERIMENT: dict[str, Any] = {
    "workflow": "greet",
    "candidates": [{"version": "v2", "percent": 50}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    db = create_db_engine(database_url)
    yield db
    db.dispose()


def _count(session: Session, experiment_id: int, arm: str, unit: str, value: float) -> None:
    add_observation(
        session,
        experiment_id=experiment_id,
        step=0,
        arm=arm,
        metric="success",
        kind="proportion",
        value=value,
        unit=unit,
    )


def test_opposite_orders_both_commit(api: TestClient, engine: Engine) -> None:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    created = api.post("/v1/experiments", json=EXPERIMENT)
    assert created.status_code == 201, created.json()
    experiment_id = created.json()["id"]
    # Both wait here after counting their first arm: with eager upserts each then holds one
    # arm row while it asks for the other one's.
    halfway = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def batch(first: str, second: str, user: str) -> None:
        try:
            with Session(engine) as session:
                _count(session, experiment_id, first, f"user:{user}-1", 1.0)
                halfway.wait()
                _count(session, experiment_id, second, f"user:{user}-2", 0.0)
                session.commit()
        except BaseException as exc:  # the test asserts that nothing was raised
            errors.append(exc)
            halfway.abort()

    threads = [
        threading.Thread(target=batch, args=("v1", "v2", "a")),
        threading.Thread(target=batch, args=("v2", "v1", "b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with Session(engine) as session:
        arms = session.exec(
            select(ArmUnitStatRow).where(ArmUnitStatRow.experiment_id == experiment_id)
        ).all()
        assert {(r.arm, r.units, r.sum_n, r.sum_s) for r in arms} == {
            ("v1", 2, 2.0, 1.0),
            ("v2", 2, 2.0, 1.0),
        }
        # The run-level rows are no longer written (the unit sums hold everything).
        assert not session.exec(
            select(ArmStatRow).where(ArmStatRow.experiment_id == experiment_id)
        ).all()


def test_a_rollback_forgets_what_it_counted(api: TestClient, engine: Engine) -> None:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    experiment_id = api.post("/v1/experiments", json=EXPERIMENT).json()["id"]
    with Session(engine) as session:
        _count(session, experiment_id, "v1", "user:gone", 1.0)
        session.rollback()
        _count(session, experiment_id, "v1", "user:kept", 1.0)
        session.commit()
    with Session(engine) as session:
        units = session.exec(
            select(ExperimentUnitRow.unit).where(ExperimentUnitRow.experiment_id == experiment_id)
        ).all()
        assert list(units) == ["user:kept"]


_SUMS = ("units", "sum_n", "sum_s", "sum_nn", "sum_ss", "sum_sn", "covered")


def _arm_sums(engine: Engine, experiment_id: int) -> dict[str, tuple[float, ...]]:
    with Session(engine) as session:
        rows = session.exec(
            select(ArmUnitStatRow).where(ArmUnitStatRow.experiment_id == experiment_id)
        ).all()
        return {r.arm: tuple(float(getattr(r, name)) for name in _SUMS) for r in rows}


def test_one_batch_with_repeated_units_equals_one_commit_per_observation(
    api: TestClient, engine: Engine
) -> None:
    """A group commit holding the same user several times (one row of the batched upsert per
    unit) leaves the same arm sums and unit rows as committing each observation alone."""
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    ids = []
    for label in ("prod", "staging"):
        if label != "prod":
            assert api.put("/v1/workflows/greet/labels/staging", json={"version": "v1"}).is_success
        created = api.post("/v1/experiments", json={**EXPERIMENT, "label": label})
        assert created.status_code == 201, created.json()
        ids.append(created.json()["id"])
    batched, one_by_one = ids
    # Users with 1, 2 and 5 values, some seen before the batch (an existing row to add to).
    values = [("v1", "a", 1.0), ("v1", "b", 0.0), ("v1", "a", 0.0), ("v2", "c", 1.0)]
    values += [("v2", "c", 1.0), ("v2", "c", 0.0), ("v1", "d", 1.0), ("v2", "c", 1.0)]
    values += [("v2", "c", 1.0), ("v1", "b", 1.0)]
    before = [("v1", "a", 1.0), ("v2", "c", 0.0)]
    for experiment_id, grouped in ((batched, True), (one_by_one, False)):
        with Session(engine) as session:
            for arm, user, value in before:
                _count(session, experiment_id, arm, f"user:{user}", value)
            session.commit()
        if grouped:
            with Session(engine) as session:
                for arm, user, value in values:
                    _count(session, experiment_id, arm, f"user:{user}", value)
                session.commit()
        else:
            for arm, user, value in values:
                with Session(engine) as session:
                    _count(session, experiment_id, arm, f"user:{user}", value)
                    session.commit()
    assert _arm_sums(engine, batched) == _arm_sums(engine, one_by_one)
    # And the sums are those of the units' own rows: a is (N 3, S 2), b (2, 1), c (6, 4), d (1, 1).
    assert _arm_sums(engine, batched)["v1"][:6] == (3.0, 6.0, 4.0, 14.0, 6.0, 9.0)
    with Session(engine) as session:
        units = session.exec(
            select(ExperimentUnitRow).where(ExperimentUnitRow.experiment_id == batched)
        ).all()
        assert sorted((u.unit, u.n, u.total) for u in units) == [
            ("user:a", 3, 2.0), ("user:b", 2, 1.0), ("user:c", 6, 4.0), ("user:d", 1, 1.0)
        ]  # fmt: skip
