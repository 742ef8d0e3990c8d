"""``GET /v1/runs/activity`` on SQLite and PostgreSQL: per workflow, the runs started in the
window, how many ended and failed, the error ratio and the cost per ended run; runs before the
window and shadow runs are not counted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col

from control_plane.kit.time import utcnow
from control_plane.store.db import create_db_engine
from control_plane.store.tables import RunRow
from tests.fixtures import GREET, seed_workflow


def run(client: TestClient, **extra: object) -> dict[str, Any]:
    answer = client.post("/v1/run", json={"workflow": "greet", "input": {"prompt": "x"}, **extra})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_each_workflow_s_last_hour_in_figures(api: TestClient, database_url: str) -> None:
    seed_workflow(api, "greet", {"v1": GREET}, {"prod": "v1"})
    ok = [run(api) for _ in range(3)]
    stopped = run(api, budget={"max_cost_usd": 1e-9})  # stopped before its first step
    assert stopped["status"] == "budget_exceeded"
    old, mirrored = run(api), run(api)
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            session.execute(
                update(RunRow)
                .where(col(RunRow.id) == old["run_id"])
                .values(created_at=utcnow() - timedelta(hours=2))
            )
            # a shadow run: it answered no one, so it is not the workflow's traffic
            session.execute(
                update(RunRow)
                .where(col(RunRow.id) == mirrored["run_id"])
                .values(shadow_of=ok[0]["run_id"])
            )
            session.commit()
    finally:
        db.dispose()
    answer = api.get("/v1/runs/activity")
    assert answer.status_code == 200, answer.text
    (greet,) = answer.json()
    assert (greet["workflow"], greet["runs"], greet["ended"], greet["failed"]) == ("greet", 4, 4, 1)
    assert greet["error_ratio"] == pytest.approx(0.25)
    spent = sum(float(r["cost_usd"]) for r in [*ok, stopped])
    assert greet["cost_per_run_usd"] == pytest.approx(spent / 4)
    wider = api.get("/v1/runs/activity", params={"window_s": 3 * 3600}).json()
    assert wider[0]["runs"] == 5
    for bad in ("0", "-1", "NaN", "1e308", "604801"):
        assert api.get("/v1/runs/activity", params={"window_s": bad}).status_code == 422, bad


def test_no_runs_is_no_rows(api: TestClient) -> None:
    assert api.get("/v1/runs/activity").json() == []
