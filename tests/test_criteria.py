"""Success criteria: assertions over a run's outputs and facts, checked at define time and
evaluated when a run completes; a run that misses one ends ``failed`` with ``criteria_failed``
(engine-level, and through ``POST /v1/run`` on SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from engine.errors import DefinitionError
from tests.fixtures import seed_workflow

BASE = """
name: checked
inputs:
  prompt: text
nodes:
  write:
    uses: llm.generate
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
  check:
    uses: moderate
    with: {model: sim/moderator, text: "${write.text}"}
outputs:
  text: "${write.text}"
  flagged: "${check.flagged}"
  categories: "${check.categories}"
  words: 7
"""


def _with(success: str) -> str:
    return BASE + "success:\n" + success


def _run(source: str, prompt: str = "a red sneaker") -> engine.RunResult:
    return engine.run_sync(source, {"prompt": prompt}, seed=5)


PASSING = """\
  - {output: text, exists: true, non_empty: true, type: text, pattern: "(?i)sneaker"}
  - {output: flagged, type: boolean}
  - {output: words, min: 1, max: 10}
  - {fact: cost_usd, max: 1.0}
  - {fact: latency_s, min: 0}
"""


def test_a_run_that_meets_its_criteria_succeeds() -> None:
    result = _run(_with(PASSING))
    assert result.ok, result.error
    assert result.outputs is not None and "sneaker" in result.outputs["text"]


@pytest.mark.parametrize(
    ("success", "message"),
    [
        ('  - {output: text, pattern: "^violet"}', "success[0]: output 'text' is"),
        ("  - {output: categories, non_empty: true}", "output 'categories' is empty"),
        ("  - {output: words, min: 8}", "output 'words' is 7, below min 8"),
        ("  - {output: words, max: 6.5}", "output 'words' is 7, above max 6.5"),
        ("  - {output: flagged, type: text}", "output 'flagged' is False, not text"),
        ("  - {output: text, min: 0}", "not a number"),
        ("  - {fact: cost_usd, max: 0.0000001}", "cost_usd is"),
    ],
)
def test_a_run_that_misses_a_criterion_fails_naming_it(success: str, message: str) -> None:
    result = _run(_with(PASSING + success.replace("success[0]", "")))
    assert result.status == "failed"
    assert result.trace.error_code == "criteria_failed"
    assert message.replace("success[0]", "success[5]") in (result.error or "")
    assert result.outputs is None
    # Every step completed: the run did its work, it just is not a success.
    assert all(s.status == "succeeded" for s in result.trace.steps.values())


@pytest.mark.parametrize(
    ("success", "location", "code"),
    [
        ("  - {output: missing, exists: true}", "success[0].output", "unknown_output"),
        ('  - {output: text, pattern: "("}', "success[0].pattern", "bad_pattern"),
        ("  - {output: text, type: txt}", "success[0].type", "bad_type"),
    ],
)
def test_criteria_are_checked_at_define_time(success: str, location: str, code: str) -> None:
    problems = [p for p in engine.check(_with(success)) if p.severity == "error"]
    assert [(p.location, p.code) for p in problems] == [(location, code)]
    assert problems[0].line is not None


@pytest.mark.parametrize(
    "success",
    [
        "  - {output: text}",  # no check
        "  - {output: text, fact: cost_usd, max: 1}",  # two subjects
        "  - {fact: cost_usd, non_empty: true}",  # a fact is a number
        "  - {output: words, min: 3, max: 2}",
        "  - {output: words, max: .nan}",
        "  - {fact: runtime, max: 1}",
    ],
)
def test_malformed_criteria_are_definition_errors(success: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        engine.define(_with(success))
    assert raised.value.problems[0].location.startswith("success[0]")


def test_criteria_do_not_change_a_workflow_without_them() -> None:
    assert engine.define(BASE).digest != engine.define(_with(PASSING)).digest
    assert "success" not in engine.define(BASE).spec.normalized()


@pytest.fixture
def client(api: TestClient) -> TestClient:
    strict = _with('  - {output: text, pattern: "^never"}')
    seed_workflow(api, "checked", {"v1": _with(PASSING), "v2": strict}, {"prod": "v1"})
    return api


def _post(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/run", json={"workflow": "checked", "input": {"prompt": "a red sneaker"}, **body}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_criteria_through_the_api(client: TestClient) -> None:
    assert _post(client)["status"] == "succeeded"
    failed = _post(client, version="v2")
    assert failed["status"] == "failed"
    assert "success criteria not met: success[0]: output 'text'" in failed["error"]
    detail = client.get(f"/v1/runs/{failed['run_id']}").json()
    assert detail["trace"]["error_code"] == "criteria_failed"
    bad = client.post("/v1/workflows", json={"source": _with("  - {output: nope, exists: true}")})
    assert bad.status_code == 422
    assert "success[0].output" in bad.text
