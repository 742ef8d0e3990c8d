"""Experiments count a run that ran out of budget, or completed without meeting its success
criteria, as not successful (SQLite and PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures import GREET, seed_workflow
from tests.test_experiments import EXPERIMENT, arm_stats, run

OUT_OF_BUDGET = GREET + "budget: {max_cost_usd: 0.0000001}\n"
UNMET = GREET + 'success:\n  - {output: text, pattern: "^never"}\n'


def test_budget_exceeded_and_criteria_failed_runs_are_unsuccessful(
    api: TestClient, database_url: str
) -> None:
    seed_workflow(api, "greet", {"v1": OUT_OF_BUDGET, "v2": UNMET}, {"prod": "v1"})
    started = api.post("/v1/experiments", json=EXPERIMENT)
    assert started.status_code == 201, started.text
    experiment = started.json()
    runs = [run(api, f"user-{i}") for i in range(24)]
    statuses = {r["version"]: r["status"] for r in runs}
    assert statuses == {"v1": "budget_exceeded", "v2": "failed"}
    stats = arm_stats(database_url, experiment["id"])
    for arm in ("v1", "v2"):
        count = sum(r["version"] == arm for r in runs)
        assert stats[(arm, "success")].sum_n == count
        assert stats[(arm, "success")].sum_s == 0
