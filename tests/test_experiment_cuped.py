"""CUPED in the store and the API, on SQLite and PostgreSQL (``analysis.cuped``).

A user's first observation of a metric in an experiment with ``cuped: true`` fixes its
pre-exposure covariate (its mean of the metric over its runs before the experiment started) on
its unit row, and the arm's covariance terms over units (ΣX, ΣX², ΣXS, ΣXN, covered) must equal
a recomputation from those rows. Results report each candidate's variance reduction; a bad
``cuped`` value is a 422.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from control_plane.store.db import create_db_engine
from control_plane.store.tables import ArmUnitStatRow, ExperimentUnitRow
from tests.fixtures import GREET, GREET_LARGE, seed_workflow

EXPERIMENT: dict[str, Any] = {
    "workflow": "greet",
    "candidates": [{"version": "v2", "percent": 50}],
    "primary": {"name": "rating", "kind": "mean", "direction": "increase", "mde": 0.1},
    "guardrails": [{"name": "success", "direction": "increase"}],
    "min_runs_per_arm": 10,
    "cuped": True,
}


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    return api


def _run(client: TestClient, user: str, rating: float | None = None) -> dict[str, Any]:
    body = {"workflow": "greet", "input": {"prompt": "hi"}, "user_id": user}
    response = client.post("/v1/run", json=body)
    assert response.status_code == 200, response.json()
    result: dict[str, Any] = response.json()
    if rating is not None:
        answer = client.post(f"/v1/runs/{result['run_id']}/outcome", json={"rating": rating})
        assert answer.status_code == 200, answer.json()
    return result


def _rows(database_url: str, experiment_id: int) -> tuple[list[Any], list[Any]]:
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            units = session.exec(
                select(ExperimentUnitRow).where(ExperimentUnitRow.experiment_id == experiment_id)
            ).all()
            arms = session.exec(
                select(ArmUnitStatRow).where(ArmUnitStatRow.experiment_id == experiment_id)
            ).all()
            return list(units), list(arms)
    finally:
        db.dispose()


def test_a_user_with_history_gets_its_covariate_and_the_sums_match(
    client: TestClient, database_url: str
) -> None:
    # Before the experiment: "old" rated twice (2 and 4), "once" once (5).
    for user, rating in (("old", 2.0), ("old", 4.0), ("once", 5.0)):
        _run(client, user, rating)
    experiment = client.post("/v1/experiments", json=EXPERIMENT).json()
    for user, rating in (("old", 3.0), ("old", 1.0), ("once", 6.0), ("new", 7.0)):
        _run(client, user, rating)
    for i in range(12):
        _run(client, f"later-{i}", float(i % 5))

    units, arms = _rows(database_url, experiment["id"])
    covariate = {(u.unit, u.metric): u.covariate for u in units}
    assert covariate[("user:old", "rating")] == pytest.approx(3.0)  # (2 + 4) / 2
    assert covariate[("user:once", "rating")] == pytest.approx(5.0)
    assert covariate[("user:new", "rating")] == 0.0  # no history: 0, not covered
    assert covariate[("user:old", "success")] == 1.0  # both earlier runs succeeded
    assert covariate[("user:new", "success")] == 0.0

    expected: dict[tuple[int, str, str], list[float]] = defaultdict(lambda: [0.0] * 5)
    for u in units:
        x = u.covariate
        assert x is not None
        sums = expected[(u.step, u.arm, u.metric)]
        for k, term in enumerate((x, x * x, x * u.total, x * u.n)):
            sums[k] += term
        sums[4] += u.unit in ("user:old", "user:once")  # the users with earlier runs
    for row in arms:
        found = (row.sum_x, row.sum_xx, row.sum_xs, row.sum_xn, row.covered)
        assert found == pytest.approx(tuple(expected[(row.step, row.arm, row.metric)]))


def test_without_cuped_no_covariate_is_computed(client: TestClient, database_url: str) -> None:
    _run(client, "old", 2.0)
    experiment = client.post("/v1/experiments", json={**EXPERIMENT, "cuped": False}).json()
    _run(client, "old", 3.0)
    units, arms = _rows(database_url, experiment["id"])
    assert {u.covariate for u in units} == {None}
    assert {(r.sum_x, r.sum_xs, r.covered) for r in arms} == {(0.0, 0.0, 0)}
    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    assert all("cuped" not in row for row in results["metrics"])


def test_results_report_the_variance_reduction(client: TestClient) -> None:
    users = [f"user-{i}" for i in range(60)]
    level = {user: float(i % 10) for i, user in enumerate(users)}
    for user in users:  # each user's own level, seen before the experiment
        _run(client, user, level[user])
    experiment = client.post("/v1/experiments", json=EXPERIMENT).json()
    for k, user in enumerate(users):
        _run(client, user, level[user] + (0.5 if k % 2 else -0.5))

    response = client.get(f"/v1/experiments/{experiment['id']}/results")
    assert response.status_code == 200, response.json()
    rows = {(r["arm"], r["metric"]): r for r in response.json()["metrics"]}
    cuped = rows[("v2", "rating")]["cuped"]
    assert cuped["reason"] == "ok"
    assert cuped["covered_units"] == cuped["units"] == 60
    assert 0.9 < cuped["variance_reduction"] < 1.0  # the level explains almost everything
    assert cuped["theta"] == pytest.approx(1.0, abs=0.1)
    # every run succeeded, before and during: no covariate variance, left unadjusted
    assert rows[("v2", "success")]["cuped"]["reason"] == "no_covariate_variance"
    assert rows[("v2", "success")]["cuped"]["variance_reduction"] is None
    assert "cuped" not in rows[("v1", "rating")]  # the baseline's row compares nothing
    # the evaluator stores the same figures with its decision
    assert client.post(f"/v1/experiments/{experiment['id']}/evaluate").status_code == 200
    decisions = client.get(f"/v1/experiments/{experiment['id']}/decisions").json()
    stored = {(r["arm"], r["metric"]): r for r in decisions[0]["statistics"]["metrics"]}
    assert stored[("v2", "rating")]["cuped"]["variance_reduction"] == pytest.approx(
        cuped["variance_reduction"]
    )


@pytest.mark.parametrize("value", ["yes", 1, None, {"on": True}])
def test_a_bad_cuped_value_is_a_422(client: TestClient, value: object) -> None:
    response = client.post("/v1/experiments", json={**EXPERIMENT, "cuped": value})
    assert response.status_code == 422, response.json()
    assert "cuped" in str(response.json())
