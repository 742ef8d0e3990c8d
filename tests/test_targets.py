"""Performance targets: ``targets:`` checked when a workflow is defined, exported per serving
version as gauges (on SQLite and PostgreSQL), and shown per arm in the experiment results next
to the figures measured over the arm's runs, each met or not. The alert rules that compare the
two are tested by promtool (``tests/test_prometheus_rules.py``)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from control_plane.cli.experiments import render_results
from control_plane.experiments.targets import targets_of
from engine.errors import DefinitionError
from tests.fixtures import GREET, GREET_LARGE, apply, seed_workflow
from tests.test_metrics import scrape

_GAUGES = {
    "p95_latency_s": "rollgraph_target_p95_latency_seconds",
    "error_ratio": "rollgraph_target_error_ratio",
    "cost_per_run_usd": "rollgraph_target_cost_per_run_usd",
}


def _with_targets(source: str, targets: dict[str, float]) -> str:
    fields = ", ".join(f"{k}: {v}" for k, v in targets.items())
    return source + f"targets: {{{fields}}}\n"


# Lenient for the baseline; the candidate's cost target is below what writer-large bills.
V1 = _with_targets(GREET, {"p95_latency_s": 600, "error_ratio": 0.5, "cost_per_run_usd": 1})
V2 = _with_targets(GREET_LARGE, {"error_ratio": 0.5, "cost_per_run_usd": 0.000001})
V3 = _with_targets(GREET, {"p95_latency_s": 30})  # on no label: serves pins only
PLAIN = {"name": "t", "nodes": {"t": {"uses": "template", "with": {"text": "x"}}}}


@pytest.mark.parametrize(
    ("targets", "location", "words"),
    [
        ({"p95_latency_s": 0}, "targets.p95_latency_s", "greater than 0"),
        ({"cost_per_run_usd": -1}, "targets.cost_per_run_usd", "greater than 0"),
        ({"error_ratio": 1.5}, "targets.error_ratio", "less than or equal to 1"),
        ({"error_ratio": 0}, "targets.error_ratio", "greater than 0"),
        ({"p95_latency_s": math.inf}, "targets.p95_latency_s", "finite"),
        ({"cost_per_run_usd": math.nan}, "targets.cost_per_run_usd", "finite"),
        ({"p95_latency": 3}, "targets.p95_latency", "unknown field"),
        ({}, "targets", "at least one of p95_latency_s, error_ratio, cost_per_run_usd"),
    ],
)
def test_targets_are_checked_when_defined(
    targets: dict[str, Any], location: str, words: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        engine.define({**PLAIN, "targets": targets})
    [problem] = raised.value.problems
    assert problem.location == location
    assert words in problem.message


def test_targets_are_part_of_the_definition_and_read_back_from_it() -> None:
    plain = engine.define(PLAIN)
    targeted = engine.define({**PLAIN, "targets": {"error_ratio": 1, "p95_latency_s": 2.5}})
    assert "targets" not in plain.spec.normalized()
    assert plain.digest != targeted.digest
    definition = engine.spec.canonical_json(targeted.spec.normalized())
    assert targets_of(targeted.digest, definition) == {"error_ratio": 1.0, "p95_latency_s": 2.5}
    assert targets_of("sha256:none", "{}") == {}


def test_a_bad_target_is_a_422_with_its_line(api: TestClient) -> None:
    response = api.post("/v1/workflows", json={"source": V1.replace("0.5", "2")})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["error"]["problems"]
    assert problem["location"] == "targets.error_ratio"
    assert problem["line"] == 11  # the `targets:` line (the source starts with a newline)


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": V1, "v2": V2}, {"prod": "v1"})
    apply(api, V3, version="v3")
    return api


def _gauges(client: TestClient) -> dict[tuple[str, str], float]:
    names = {gauge: target for target, gauge in _GAUGES.items()}
    return {
        (s.labels["version"], names[s.name]): s.value
        for s in scrape(client)
        if s.name in names and s.labels["workflow"] == "greet"
    }


def test_the_targets_of_serving_versions_are_exported_as_gauges(client: TestClient) -> None:
    assert _gauges(client) == {
        ("v1", "p95_latency_s"): 600,
        ("v1", "error_ratio"): 0.5,
        ("v1", "cost_per_run_usd"): 1,
    }
    # A candidate serves the label too; v3 serves none and stays out.
    body = {"version": "v2", "percent": 10}
    assert client.put("/v1/workflows/greet/rollouts/prod", json=body).is_success
    found = _gauges(client)
    assert found[("v2", "cost_per_run_usd")] == 0.000001
    assert ("v2", "p95_latency_s") not in found  # v2 sets no latency target
    assert {version for version, _ in found} == {"v1", "v2"}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def test_experiment_results_show_each_arms_figures_next_to_its_targets(
    client: TestClient,
) -> None:
    experiment = {
        "workflow": "greet",
        "candidates": [{"version": "v2", "percent": 50}],
        "primary": {"name": "success", "direction": "increase", "mde": 0.1},
    }
    started = client.post("/v1/experiments", json=experiment)
    assert started.status_code == 201, started.text
    runs = []
    for i in range(40):
        body = {"workflow": "greet", "input": {"prompt": "hi"}, "user_id": f"u{i}"}
        response = client.post("/v1/run", json=body)
        assert response.status_code == 200, response.text
        runs.append(response.json())
    results = client.get(f"/v1/experiments/{started.json()['id']}/results")
    assert results.status_code == 200, results.text
    shown = {t["version"]: t for t in results.json()["targets"]}
    assert list(shown) == ["v1", "v2"]  # the baseline first
    for version in ("v1", "v2"):
        mine = [r for r in runs if r["version"] == version]
        assert mine, "both arms get runs"
        figures = {f["name"]: f for f in shown[version]["figures"]}
        assert shown[version]["runs"] == len(mine)
        failed = sum(r["status"] == "failed" for r in mine)
        assert figures["error_ratio"]["measured"] == pytest.approx(failed / len(mine))
        cost = sum(r["cost_usd"] for r in mine) / len(mine)
        assert figures["cost_per_run_usd"]["measured"] == pytest.approx(cost)
        latency = _p95([r["latency_s"] for r in mine])
        assert figures["p95_latency_s"]["measured"] == pytest.approx(latency)
    v1 = {f["name"]: (f["target"], f["met"]) for f in shown["v1"]["figures"]}
    assert v1 == {
        "p95_latency_s": (600, True),
        "error_ratio": (0.5, True),
        "cost_per_run_usd": (1, True),
    }
    v2 = {f["name"]: (f["target"], f["met"]) for f in shown["v2"]["figures"]}
    assert v2 == {
        "p95_latency_s": (None, None),  # no target: measured, neither met nor missed
        "error_ratio": (0.5, True),
        "cost_per_run_usd": (0.000001, False),
    }
    # `rollgraph experiment results` prints them under the table.
    printed = render_results(results.json()).splitlines()
    (line,) = [text for text in printed if text.startswith("targets v2 ")]
    assert "error ratio 0 (target 0.5) met" in line
    assert line.endswith("(target $1e-06) MISSED")
