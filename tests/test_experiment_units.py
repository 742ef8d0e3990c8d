"""Users, not runs, are an experiment's units, on SQLite and PostgreSQL: a user who runs many
times is one unit in the sample ratio check and in every metric's variance.

Before, one user running 150 times halted an experiment with "assignment or logging is
broken": 150 runs in one arm read as a sample ratio mismatch.
"""

from __future__ import annotations

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
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "min_runs_per_arm": 10,
}


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    return api


def run(client: TestClient, user: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"workflow": "greet", "input": {"prompt": "hi"}}
    if user is not None:
        body["user_id"] = user
    response = client.post("/v1/run", json=body)
    assert response.status_code == 200, response.json()
    result: dict[str, Any] = response.json()
    return result


def unit_rows(database_url: str, experiment_id: int) -> list[ArmUnitStatRow]:
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            query = select(ArmUnitStatRow).where(ArmUnitStatRow.experiment_id == experiment_id)
            return list(session.exec(query).all())
    finally:
        db.dispose()


def test_a_user_who_runs_150_times_is_one_unit(client: TestClient, database_url: str) -> None:
    experiment = client.post("/v1/experiments", json=EXPERIMENT).json()
    heavy = [run(client, "heavy") for _ in range(150)]
    others = [run(client, f"user-{i}") for i in range(60)]
    anonymous = [run(client, None) for _ in range(4)]  # each its own unit
    for r in [*heavy, *others, *anonymous]:
        client.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": True})

    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    users = {"v1": 0, "v2": 0}
    users[heavy[0]["version"]] += 1
    for r in [*others, *anonymous]:
        users[r["version"]] += 1
    assert results["srm"]["observed"] == users
    assert results["srm"]["flagged"] is False
    assert results["action"] != "halt" or all(r["code"] != "srm" for r in results["reasons"]), (
        results["reasons"]
    )

    rows = {(r.arm, r.metric): r for r in unit_rows(database_url, experiment["id"])}
    success = rows[(heavy[0]["version"], "success")]
    runs_in_arm = sum(
        1 for r in [*heavy, *others, *anonymous] if r["version"] == heavy[0]["version"]
    )
    # Units and runs, and the sums the delta method reads, in step with what ran.
    assert (success.units, success.sum_n) == (users[heavy[0]["version"]], runs_in_arm)
    assert success.sum_s == runs_in_arm  # every run succeeded
    assert success.sum_nn == 150 * 150 + (success.units - 1)
    converted = rows[(heavy[0]["version"], "converted")]
    assert (converted.units, converted.sum_n, converted.sum_s) == (
        success.units,
        runs_in_arm,
        runs_in_arm,
    )


def test_each_unit_keeps_its_running_count_and_total(client: TestClient, database_url: str) -> None:
    experiment = client.post("/v1/experiments", json=EXPERIMENT).json()
    runs = [run(client, "u1") for _ in range(3)]
    for value, r in zip((True, False, True), runs, strict=True):
        client.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": value})
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            query = select(ExperimentUnitRow).where(
                ExperimentUnitRow.experiment_id == experiment["id"],
                ExperimentUnitRow.metric == "converted",
            )
            (row,) = session.exec(query).all()
    finally:
        db.dispose()
    assert (row.unit, row.arm, row.n, row.total) == ("user:u1", runs[0]["version"], 3, 2.0)
    (arm,) = [
        r
        for r in unit_rows(database_url, experiment["id"])
        if r.metric == "converted" and r.arm == row.arm
    ]
    assert (arm.units, arm.sum_n, arm.sum_s, arm.sum_nn, arm.sum_ss, arm.sum_sn) == (
        1,
        3,
        2,
        9,
        4,
        6,
    )
