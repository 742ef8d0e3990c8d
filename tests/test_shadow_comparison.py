"""The shadow comparison on SQLite and PostgreSQL: served vs shadow paired by request, with the
statistics of ``analysis.paired`` over exactly the stored pairs, outcomes present on both runs
of a pair included, and a verdict in words."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from analysis.paired import mcnemar_exact, paired_t_test
from analysis.paired_sequential import paired_sequential
from control_plane.runs.execution import Runs
from tests.fixtures import GREET, GREET_LARGE, app_state, seed_workflow

SHADOW = "/v1/workflows/greet/labels/prod/shadow"
COMPARISON = f"{SHADOW}/comparison"


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    return api


def drain(client: TestClient) -> None:
    runs = app_state(client).runs
    assert isinstance(runs, Runs) and client.portal is not None
    client.portal.call(runs.shadows.drain)


def by_metric(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["metric"]: m for m in body["metrics"]}


def test_served_and_shadow_paired_by_request(client: TestClient) -> None:
    assert client.get(COMPARISON).status_code == 404  # never shadowed
    body = {"version": "v2", "percent": 100, "max_cost_usd_per_hour": 100}
    assert client.put(SHADOW, json=body).status_code == 200
    empty = client.get(COMPARISON).json()
    assert empty["pairs"] == 0 and empty["verdict"].startswith("no pairs yet")
    assert by_metric(empty)["latency_s"]["reason"] == "no_pairs"

    answers = [
        client.post(
            "/v1/run",
            json={"workflow": "greet", "input": {"prompt": "p" * (i + 1)}, "user_id": f"u{i}"},
        ).json()
        for i in range(12)
    ]
    drain(client)
    shadows = {
        r["shadow_of"]: r
        for r in client.get("/v1/runs", params={"workflow": "greet", "version": "v2"}).json()
    }
    assert len(shadows) == 12
    for i, answer in enumerate(answers[:6]):  # an outcome on both runs of six pairs
        for run_id, value in ((answer["run_id"], i), (shadows[answer["run_id"]]["run_id"], i + 2)):
            recorded = client.post(f"/v1/runs/{run_id}/outcome", json={"rating": value})
            assert recorded.status_code == 200, recorded.text
    client.post(f"/v1/runs/{answers[7]['run_id']}/outcome", json={"rating": 1})  # served only

    result = client.get(COMPARISON)
    assert result.status_code == 200, result.text
    got = result.json()
    assert (got["pairs"], got["shadow_version"], got["served_versions"]) == (12, "v2", ["v1"])
    metrics = by_metric(got)
    assert set(metrics) == {"success", "latency_s", "cost_usd", "rating"}
    served = answers
    paired = [shadows[a["run_id"]] for a in served]
    cost = paired_t_test([a["cost_usd"] for a in served], [s["cost_usd"] for s in paired])
    assert metrics["cost_usd"]["pairs"] == 12
    assert metrics["cost_usd"]["mean_difference"] == pytest.approx(cost.mean_difference)
    assert metrics["cost_usd"]["p_value"] == cost.p_value
    assert metrics["cost_usd"]["method"] == "paired t-test"
    always = paired_sequential([a["cost_usd"] for a in served], [s["cost_usd"] for s in paired])
    assert metrics["cost_usd"]["sequential_p_value"] == always.p_value
    assert metrics["cost_usd"]["sequential_ci_low"] == pytest.approx(always.ci_low)
    success = mcnemar_exact(
        [a["status"] == "succeeded" for a in served], [s["status"] == "succeeded" for s in paired]
    )
    assert metrics["success"]["method"] == "McNemar's exact test"
    assert metrics["success"]["reason"] == success.reason
    rating = metrics["rating"]
    assert (rating["pairs"], rating["mean_difference"], rating["reason"]) == (
        6,
        2.0,
        "zero_variance",
    )
    assert "every pair differs by +2" in rating["verdict"]
    assert isinstance(got["verdict"], str) and got["verdict"]
    # The same answer for the version named explicitly; a version with no shadow runs has none.
    assert client.get(COMPARISON, params={"version": "v2"}).json()["pairs"] == 12
    assert client.get(COMPARISON, params={"version": "v1"}).json()["pairs"] == 0


@pytest.mark.parametrize(
    "params", [{"limit": 1}, {"limit": 10**9}, {"version": ""}, {"version": "a\x00b"}]
)
def test_bad_parameters_are_422(client: TestClient, params: dict[str, Any]) -> None:
    assert client.get(COMPARISON, params=params).status_code == 422
