"""Budgets through ``POST /v1/run`` on SQLite and PostgreSQL: a run stopped by its budget is
stored ``budget_exceeded`` (counted, listed, resumable), a request can only lower the workflow's
budget and deadline, and a resume with a raised budget goes on without re-billing its steps."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from control_plane.runs.limits import attempt_limits
from control_plane.runs.schemas import BudgetRequest
from tests.fixtures import seed_workflow

CLIP = """
name: clip
inputs:
  seconds: number
budget:
  max_cost_usd: 1.0
nodes:
  script:
    uses: llm.generate
    with: {model: sim/writer-large, prompt: "a red sneaker"}
  video:
    uses: video.generate
    with: {model: sim/video-hq, prompt: "${script.text}", seconds: "${inputs.seconds}"}
outputs:
  video: "${video.video}"
"""
UNBUDGETED = CLIP.replace("budget:\n  max_cost_usd: 1.0\n", "")


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "clip", {"v1": CLIP, "v2": UNBUDGETED}, {"prod": "v1", "free": "v2"})
    return api


def post(client: TestClient, seconds: float, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/run", json={"workflow": "clip", "input": {"seconds": seconds}, **body}
    )
    assert response.status_code == 200, response.json()
    answer: dict[str, Any] = response.json()
    return answer


def test_a_run_over_its_workflows_budget_is_stored_budget_exceeded(client: TestClient) -> None:
    run = post(client, 4)  # 4 s at $0.35/s: $1.40 > $1.00
    assert run["status"] == "budget_exceeded"
    assert "'video'" in run["error"] and "max_cost_usd $1.0000" in run["error"]
    assert 0 < run["cost_usd"] < 1.0
    detail = client.get(f"/v1/runs/{run['run_id']}").json()
    assert detail["status"] == "budget_exceeded"
    steps = {s["node"]: s for s in detail["trace"]["steps"]}
    assert steps["video"]["status"] == "cancelled"
    listed = client.get("/v1/runs", params={"status": "budget_exceeded"}).json()
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    metrics = client.get("/metrics").text
    assert 'status="budget_exceeded"' in metrics
    assert post(client, 2)["status"] == "succeeded"


def test_a_request_budget_only_lowers_the_workflows(client: TestClient) -> None:
    lowered = post(client, 2, budget={"max_cost_usd": 0.5})
    assert lowered["status"] == "budget_exceeded"
    assert "max_cost_usd $0.5000" in lowered["error"]
    higher = post(client, 4, budget={"max_cost_usd": 100})
    assert higher["status"] == "budget_exceeded"
    # A workflow without a budget gets the request's.
    media = post(client, 4, label="free", budget={"max_media_seconds": 3})
    assert media["status"] == "budget_exceeded"
    assert post(client, 4, label="free")["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"budget": {"max_cost_usd": -1}}, "max_cost_usd"),
        ({"budget": {"max_cost_usd": 0}}, "max_cost_usd"),
        ({"budget": {"max_tokens": 1e300}}, "max_tokens"),
        ({"budget": {"max_usd": 1}}, "max_usd"),
        ({"budget": {"max_cost_usd": "lots"}}, "max_cost_usd"),
        ({"deadline_s": 0}, "deadline_s"),
        ({"deadline_s": 1e9}, "deadline_s"),
    ],
)
def test_a_bad_budget_or_deadline_is_a_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/run", json={"workflow": "clip", "input": {"seconds": 1}, **body})
    assert response.status_code == 422
    assert field in response.text


def test_a_bad_workflow_budget_is_refused_when_applied(client: TestClient) -> None:
    source = CLIP.replace("max_cost_usd: 1.0", "max_cost_usd: -3")
    response = client.post("/v1/workflows", json={"source": source})
    assert response.status_code == 422
    assert "budget.max_cost_usd" in response.text


def test_a_resume_with_a_raised_budget_goes_on_from_its_completed_steps(
    client: TestClient,
) -> None:
    run = post(client, 4)
    first_cost = run["cost_usd"]
    run_id = run["run_id"]
    again = client.post(f"/v1/runs/{run_id}/resume").json()
    assert again["status"] == "budget_exceeded"  # the same budget stops it again
    assert again["attempt"] == 2
    raised = client.post(f"/v1/runs/{run_id}/resume", json={"budget": {"max_cost_usd": 2}})
    assert raised.status_code == 200, raised.text
    done = raised.json()
    assert done["status"] == "succeeded"
    assert done["attempt"] == 3
    # The script was billed once, by the first attempt; the resume billed only the video.
    assert done["cost_usd"] == pytest.approx(first_cost + 4 * 0.35)
    detail = client.get(f"/v1/runs/{run_id}").json()
    steps = {s["node"]: s for s in detail["trace"]["steps"]}
    assert steps["script"]["cache_hit"] is True
    bad = client.post(f"/v1/runs/{run_id}/resume", json={"budget": {"max_cost_usd": -1}})
    assert bad.status_code == 422


def test_an_async_run_applies_the_request_budget(client: TestClient) -> None:
    response = client.post(
        "/v1/run",
        json={
            "workflow": "clip",
            "label": "free",
            "input": {"seconds": 2},
            "mode": "async",
            "budget": {"max_cost_usd": 0.1},
        },
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    for _ in range(500):
        run = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    assert run["status"] == "budget_exceeded"
    assert "max_cost_usd $0.1000" in run["error"]


def test_attempt_limits_take_the_shortest_deadline_and_the_lowest_budget() -> None:
    wf = engine.define(CLIP)
    kw = attempt_limits(wf, {"deadline_s": 5, "budget": {"max_cost_usd": 3}}, 30)
    assert kw["deadline_s"] == 5
    assert kw["budget"] == engine.Budget(max_cost_usd=1.0)  # the workflow's is lower
    assert attempt_limits(wf, {"deadline_s": 50}, 30)["deadline_s"] == 30
    raised = attempt_limits(wf, None, 30, BudgetRequest(max_cost_usd=9))
    assert raised["budget"] == engine.Budget(max_cost_usd=9)
    assert raised["replace_budget"] is True
    assert "budget" not in attempt_limits(engine.define(UNBUDGETED), None, 30)
