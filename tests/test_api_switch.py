"""A workflow with ``when`` comparisons and a ``switch`` through ``POST /v1/run``, on SQLite and
PostgreSQL: the chosen branch runs, the stored trace shows the others skipped with reasons, and
an ill-typed condition is a 422 naming its field and line."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures import seed_workflow

ROUTED = """
name: routed
inputs:
  prompt: text
  score: number
nodes:
  safety:
    uses: moderate
    with: {model: sim/moderator, text: "${inputs.prompt}"}
  route:
    uses: switch
    with:
      cases:
        unsafe: {when: '"violence" in ${safety.categories}', then: [refuse]}
        good: {when: "${inputs.score} >= 0.7 and not ${safety.flagged}", then: [write]}
      default: [draft]
  refuse:
    uses: template
    with: {text: "refused"}
  write:
    uses: llm.generate
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
  polish:
    uses: llm.generate
    with: {model: sim/writer-small, prompt: "Polish: ${write.text}"}
  draft:
    uses: template
    with: {text: "draft: {p}", values: {p: "${inputs.prompt}"}}
  answer:
    uses: coalesce
    with: {values: ["${refuse.text}", "${polish.text}", "${draft.text}"]}
outputs:
  answer: "${answer.value}"
  case: "${route.case}"
"""


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "routed", {"v1": ROUTED}, {"prod": "v1"})
    return api


def run(client: TestClient, prompt: str, score: float) -> dict[str, Any]:
    response = client.post(
        "/v1/run", json={"workflow": "routed", "input": {"prompt": prompt, "score": score}}
    )
    assert response.status_code == 200, response.json()
    result: dict[str, Any] = response.json()
    detail = client.get(f"/v1/runs/{result['run_id']}")
    assert detail.status_code == 200
    return {"result": result, "steps": {s["node"]: s for s in detail.json()["trace"]["steps"]}}


@pytest.mark.parametrize(
    ("prompt", "score", "case", "ran", "skipped"),
    [
        ("a red sneaker", 0.9, "good", {"write", "polish"}, {"refuse", "draft"}),
        ("a bomb in a bag", 0.9, "unsafe", {"refuse"}, {"write", "draft", "polish"}),
        ("a red sneaker", 0.2, "default", {"draft"}, {"refuse", "write", "polish"}),
    ],
)
def test_a_switch_runs_one_branch_and_the_trace_says_why_the_others_did_not(
    client: TestClient, prompt: str, score: float, case: str, ran: set[str], skipped: set[str]
) -> None:
    got = run(client, prompt, score)
    result, steps = got["result"], got["steps"]
    assert result["status"] == "succeeded", result
    assert result["outputs"]["case"] == case
    answer = result["outputs"]["answer"]
    assert (
        answer == "refused"
        if case == "unsafe"
        else answer.startswith("draft") == (case == "default")
    )
    assert steps["route"]["status"] == "succeeded"
    assert steps["answer"]["status"] == "succeeded"
    for node in ran:
        assert steps[node]["status"] == "succeeded", node
    heads = {"refuse": "unsafe", "write": "good", "draft": "default"}
    for node in skipped:
        assert steps[node]["status"] == "skipped", node
        if node in heads:
            assert steps[node]["reason"] == (
                f"switch 'route' chose case {case!r}, not {heads[node]!r}"
            )
        else:
            assert steps[node]["reason"] == "upstream 'write' was skipped"


def test_an_ill_typed_condition_is_a_422_with_its_line(client: TestClient) -> None:
    broken = ROUTED.replace("${inputs.score} >= 0.7", "${inputs.score} >= 'high'")
    response = client.post("/v1/workflows", json={"source": broken, "version": "v2"})
    assert response.status_code == 422, response.text
    problems = response.json()["error"]["problems"]
    (problem,) = [p for p in problems if p["severity"] == "error"]
    assert problem["code"] == "type_mismatch"
    assert problem["location"] == "nodes.route.with.cases.good.when"
    assert problem["line"] == 15  # the `good:` case (the source starts with a newline)
    assert "cannot order number against text" in problem["message"]


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ("(" * 20_000 + "${inputs.score} > 1" + ")" * 20_000, "over the limit of 2,000"),
        ("(" * 33 + "${inputs.score} > 1" + ")" * 33, "nested more than 32 levels"),
        ("${inputs.score} > nan", "NaN and infinity are not numbers"),
        ("${inputs.score} > 1e400", "not a finite number"),
        ("'" + "x" * 1_000_000 + "' == ${inputs.prompt}", "over the limit of 2,000"),
    ],
)
def test_hostile_conditions_are_422s_naming_the_field(
    client: TestClient, condition: str, fragment: str
) -> None:
    source = ROUTED.replace('"${inputs.score} >= 0.7 and not ${safety.flagged}"', repr(condition))
    assert source != ROUTED
    response = client.post("/v1/workflows", json={"source": source, "version": "v9"})
    assert response.status_code == 422, response.text[:300]
    (problem,) = response.json()["error"]["problems"]
    assert (problem["code"], problem["location"]) == (
        "bad_when",
        "nodes.route.with.cases.good.when",
    )
    assert fragment in problem["message"]
