"""``GET /metrics`` on SQLite and PostgreSQL: Prometheus naming, each run, node step,
assignment, outcome and experiment decision counted once and in step with the store, HTTP
requests by route template, bounded labels, rollout shares, exemplars, p-values, and counts
summed over the workers of a real two-process server (multiprocess mode)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import engine
from control_plane.metrics import assignment_reason
from tests.fixtures import (
    GREET,
    GREET_LARGE,
    app_client,
    app_state,
    apply,
    bearer,
    seed_workflow,
    set_label,
)

BILLING = """
name: billing
inputs:
  topic: text
nodes:
  draft:
    uses: test.paid
    with: {x: "${inputs.topic}"}
  polish:
    uses: test.flaky
    with: {x: "${draft.out}"}
    retry: {max_attempts: 2, initial_s: 0, jitter: false}
  check:
    uses: test.gate
    with: {x: "${polish.out}"}
outputs:
  result: "${check.out}"
"""
EXPERIMENT: dict[str, Any] = {
    "workflow": "greet",
    "candidates": [{"version": "v2", "percent": 50}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "min_runs_per_arm": 10,
}
OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


class Kinds:
    """Node kinds whose behaviour the tests set: ``test.gate`` fails while closed;
    ``test.flaky`` fails (retryably) every other call, so each run retries it once."""

    def __init__(self) -> None:
        self.gate_open = False
        self.flaky_calls = 0

    def node_kinds(self) -> engine.NodeKinds:
        reg = engine.default_kinds.copy()

        @engine.node_kind("test.paid", inputs={"x": "json"}, outputs={"out": "json"}, kinds=reg)
        async def paid(ctx: engine.NodeContext, params: dict[str, Any]) -> engine.NodeResult:
            return engine.NodeResult({"out": f"paid({params['x']})"}, cost_usd=0.01)

        @engine.node_kind("test.flaky", inputs={"x": "json"}, outputs={"out": "json"}, kinds=reg)
        async def flaky(ctx: engine.NodeContext, params: dict[str, Any]) -> dict[str, Any]:
            self.flaky_calls += 1
            if self.flaky_calls % 2:
                raise engine.NodeError("busy", retryable=True)
            return {"out": params["x"]}

        @engine.node_kind("test.gate", inputs={"x": "json"}, outputs={"out": "json"}, kinds=reg)
        async def gate(ctx: engine.NodeContext, params: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(0)
            if not self.gate_open:
                raise engine.NodeError("the gate is closed", retryable=False)
            return {"out": params["x"]}

        return reg


@pytest.fixture
def kinds() -> Kinds:
    return Kinds()


@pytest.fixture
def billing(database_url: str, admin_key: str, kinds: Kinds) -> Iterator[TestClient]:
    def run_engine() -> engine.Engine:
        return engine.Engine(kinds=kinds.node_kinds())

    with app_client(database_url, admin_key, run_engine=run_engine) as client:
        apply(client, BILLING)  # v1
        set_label(client, "billing", "prod", "v1")
        yield client


@pytest.fixture
def greet(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    return api


def samples(text: str, *, openmetrics: bool = False) -> list[Sample]:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return [s for family in parse(text) for s in family.samples]


def scrape(client: TestClient, *, openmetrics: bool = False) -> list[Sample]:
    response = client.get("/metrics", headers=OPENMETRICS if openmetrics else {})
    assert response.status_code == 200
    return samples(response.text, openmetrics=openmetrics)


def total(found: list[Sample], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        s.value
        for s in found
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def by(found: list[Sample], name: str, label: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for s in found:
        if s.name == name:
            sums[s.labels[label]] = sums.get(s.labels[label], 0.0) + s.value
    return sums


def run(client: TestClient, workflow: str, **body: Any) -> dict[str, Any]:
    inputs = {"topic": body.pop("topic", "t")} if workflow == "billing" else {"prompt": "hi"}
    response = client.post("/v1/run", json={"workflow": workflow, "input": inputs, **body})
    assert response.status_code in (200, 202), response.json()
    result: dict[str, Any] = response.json()
    return result


def eventually(client: TestClient, name: str, expected: float, **labels: str) -> list[Sample]:
    # An async run is counted just after its write commits, in its own task: poll briefly.
    for _ in range(250):
        found = scrape(client)
        if total(found, name, **labels) == expected:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{name}{labels} never reached {expected}: {total(found, name)}")


# -- conventions -------------------------------------------------------------------------------
def test_names_follow_prometheus_conventions(greet: TestClient) -> None:
    run(greet, "greet", user_id="u1")
    response = greet.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.text))
    names = {f.name for f in families}
    assert {
        "rollgraph_build_info",
        "rollgraph_runs",
        "rollgraph_run_duration_seconds",
        "rollgraph_run_cost_usd",
        "rollgraph_node_duration_seconds",
        "rollgraph_node_attempts",
        "rollgraph_assignments",
        "rollgraph_http_requests",
        "rollgraph_http_request_duration_seconds",
        "rollgraph_rollout_share_ratio",
    } <= names
    for family in families:
        assert family.name.startswith("rollgraph_"), family.name
        assert family.type != "summary", family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
            if not family.samples:  # labelled, nothing observed yet (no shadow run here)
                continue
            bounds = {s.labels["le"] for s in family.samples if s.name.endswith("_bucket")}
            assert {"0.005", "600.0", "+Inf"} <= bounds
        if family.name.endswith("_ratio") or "p_value" in family.name:
            assert all(0 <= s.value <= 1 for s in family.samples), family.name
        assert not any(s.name.endswith("_created") for s in family.samples)
    (info,) = [s for f in families if f.name == "rollgraph_build_info" for s in f.samples]
    assert info.value == 1 and set(info.labels) == {"version", "python"}


# -- runs, nodes, assignments ------------------------------------------------------------------
def test_runs_nodes_and_assignments_are_counted_once_in_step_with_the_store(
    billing: TestClient, kinds: Kinds
) -> None:
    failed = [run(billing, "billing", user_id=f"u{i}", topic=f"f{i}") for i in range(2)]
    assert all(r["status"] == "failed" for r in failed)
    kinds.gate_open = True
    succeeded = [
        run(billing, "billing", user_id="u9", topic="a"),
        run(billing, "billing", version="v1", topic="b"),
        run(billing, "billing", topic="c"),  # no user id: random
    ]
    assert all(r["status"] == "succeeded" for r in succeeded)
    resumed = billing.post(f"/v1/runs/{failed[0]['run_id']}/resume").json()
    assert (resumed["status"], resumed["attempt"]) == ("succeeded", 2)

    found = scrape(billing)
    runs_by_status = by(found, "rollgraph_runs_total", "status")
    assert runs_by_status == {"failed": 2, "succeeded": 3}  # each run once, at its first end
    assert by(found, "rollgraph_run_resumes_total", "status") == {"succeeded": 1}
    stored = billing.get("/v1/runs").json()
    assert sum(runs_by_status.values()) == len(stored) == 5
    in_store = {s: sum(r["status"] == s for r in stored) for s in ("succeeded", "failed")}
    # The identity the store comparison rests on: a resume moves a run from failed onwards.
    assert in_store["succeeded"] == runs_by_status["succeeded"] + 1
    assert in_store["failed"] == runs_by_status["failed"] - 1
    assert total(found, "rollgraph_runs_total", mode="sync", workflow="billing", version="v1")

    reasons = by(found, "rollgraph_assignments_total", "reason")
    assert reasons == {"label": 3, "pin": 1, "random": 1}
    assert reasons == {k: sum(assignment_reason(r["reason"]) == k for r in stored) for k in reasons}

    # Each run's first attempt, plus the resume, executed or reused each node once.
    assert by(found, "rollgraph_node_attempts_total", "kind") == {
        "test.paid": 5,  # the resume reused draft
        "test.flaky": 10,  # every execution failed once, then passed
        "test.gate": 6,
    }
    assert by(found, "rollgraph_node_retries_total", "kind") == {"test.flaky": 5}
    assert by(found, "rollgraph_node_cache_hits_total", "kind") == {
        "test.paid": 1,
        "test.flaky": 1,
    }
    assert total(found, "rollgraph_node_duration_seconds_count", kind="test.flaky") == 5
    assert total(found, "rollgraph_run_duration_seconds_count") == 6  # every ended attempt
    billed = total(found, "rollgraph_run_cost_usd_total", workflow="billing")
    assert billed == pytest.approx(sum(r["cost_usd"] for r in stored))


def test_an_async_run_is_counted_when_it_ends(billing: TestClient, kinds: Kinds) -> None:
    kinds.gate_open = True
    accepted = run(billing, "billing", mode="async", user_id="u1")
    assert accepted["status"] == "running"
    found = eventually(billing, "rollgraph_runs_total", 1, mode="async", status="succeeded")
    assert by(found, "rollgraph_runs_total", "status") == {"succeeded": 1}  # not "running"
    assert by(found, "rollgraph_assignments_total", "reason") == {"label": 1}


# -- HTTP and bounded labels -------------------------------------------------------------------
def test_http_requests_are_counted_by_route_template(greet: TestClient) -> None:
    assert greet.get("/v1/runs/abc").status_code == 404
    for i in range(5):
        assert greet.get(f"/no/such/path/{i}").status_code == 404
    assert greet.post("/v1/run", content=b"x" * 2_000_000).status_code == 413
    found = scrape(greet)
    requests = [s for s in found if s.name == "rollgraph_http_requests_total"]
    routes = {s.labels["route"] for s in requests}
    assert "/v1/runs/{run_id}" in routes and "/v1/runs/abc" not in routes
    assert not any(r.startswith("/no/") for r in routes)
    assert total(found, "rollgraph_http_requests_total", route="unmatched") == 5
    one = {"route": "/v1/runs/{run_id}", "method": "GET", "status_class": "4xx"}
    assert total(found, "rollgraph_http_requests_total", **one) == 1
    # Refused by the body-size middleware before routing, still under its template.
    too_large = {"route": "/v1/run", "method": "POST", "status_class": "4xx"}
    assert total(found, "rollgraph_http_requests_total", **too_large) == 1
    assert {s.labels["status_class"] for s in requests} <= {"2xx", "4xx", "5xx"}


def test_no_label_value_is_a_user_id_or_a_run_id(greet: TestClient) -> None:
    runs = [run(greet, "greet", user_id=f"user-{i}") for i in range(5)]
    for r in runs:
        greet.get(f"/v1/runs/{r['run_id']}")
        greet.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": True})
    forbidden = {r["run_id"] for r in runs} | {f"user-{i}" for i in range(5)}
    for found in (scrape(greet), scrape(greet, openmetrics=True)):
        values = {v for s in found for v in s.labels.values()}
        assert not values & forbidden
        assert not any(r["run_id"] in v for r in runs for v in values)


# -- outcomes ----------------------------------------------------------------------------------
def test_outcomes_are_counted_when_recorded_not_when_repeated(greet: TestClient) -> None:
    run_id = run(greet, "greet", user_id="u1")["run_id"]
    path = f"/v1/runs/{run_id}/outcome"
    assert greet.post(path, json={"converted": True, "rating": 4.0}).status_code == 200
    assert greet.post(path, json={"converted": True}).status_code == 200  # unchanged
    assert greet.post(path, json={"converted": False}).status_code == 409
    assert greet.post("/v1/runs/nope/outcome", json={"converted": True}).status_code == 404
    found = scrape(greet)
    assert by(found, "rollgraph_outcomes_total", "metric") == {"converted": 1, "rating": 1}


# -- rollout shares ----------------------------------------------------------------------------
def test_rollout_shares_cover_active_versions_only(greet: TestClient) -> None:
    body = {"version": "v2", "percent": 30}
    assert greet.put("/v1/workflows/greet/rollouts/prod", json=body).is_success
    shares = {
        s.labels["version"]: s.value
        for s in scrape(greet)
        if s.name == "rollgraph_rollout_share_ratio" and s.labels["label"] == "prod"
    }
    assert shares == pytest.approx({"v1": 0.7, "v2": 0.3})
    assert greet.post("/v1/workflows/greet/versions/v2/archive").is_success
    left = [s for s in scrape(greet) if s.name == "rollgraph_rollout_share_ratio"]
    assert {s.labels["version"] for s in left} == {"v1"}


# -- exemplars ---------------------------------------------------------------------------------
def test_run_durations_carry_the_run_id_as_an_exemplar_in_openmetrics(greet: TestClient) -> None:
    run_ids = {run(greet, "greet", user_id=f"u{i}")["run_id"] for i in range(3)}
    response = greet.get("/metrics", headers=OPENMETRICS)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    buckets = [
        s
        for s in samples(response.text, openmetrics=True)
        if s.name == "rollgraph_run_duration_seconds_bucket" and s.exemplar is not None
    ]
    assert buckets
    assert {s.exemplar.labels["run_id"] for s in buckets if s.exemplar} <= run_ids
    assert "# {" not in greet.get("/metrics").text  # the classic format has no exemplars


# -- experiments -------------------------------------------------------------------------------
def test_experiment_decisions_actions_and_p_values(greet: TestClient) -> None:
    experiment = greet.post("/v1/experiments", json=EXPERIMENT).json()
    ident = str(experiment["id"])
    for i in range(100):
        r = run(greet, "greet", user_id=f"user-{i}")
        rate = 9 if r["version"] == "v1" else 1
        greet.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": i % 10 < rate})
    assert by(scrape(greet), "rollgraph_experiment_p_value", "arm") == {}  # no decision yet

    decided = greet.post(f"/v1/experiments/{ident}/evaluate")
    assert decided.status_code == 200, decided.json()
    action, applied = decided.json()["action"], decided.json()["applied"]
    assert applied == "rollback"
    found = scrape(greet)
    assert total(found, "rollgraph_experiment_decisions_total", experiment=ident) == 1
    assert total(found, "rollgraph_experiment_decisions_total", action=action) == 1
    assert by(found, "rollgraph_experiment_actions_total", "action") == {"rollback": 1}
    # The experiment ended: its gauges are gone with it.
    assert by(found, "rollgraph_experiment_p_value", "arm") == {}
    assert by(found, "rollgraph_experiment_srm_p_value", "experiment") == {}
    shares = {s.labels["version"] for s in found if s.name == "rollgraph_rollout_share_ratio"}
    assert shares == {"v1"}  # rolled back: the label's own version takes all


def test_p_values_of_a_running_experiment_come_from_its_latest_decision(
    greet: TestClient,
) -> None:
    body = {**EXPERIMENT, "auto_rollback": False}
    experiment = greet.post("/v1/experiments", json=body).json()
    ident = str(experiment["id"])
    # Enough users that each arm has the ten expected events a proportion needs before it is
    # tested (analysis.degenerate's too_few_events), whatever the random split.
    for i in range(200):
        r = run(greet, "greet", user_id=f"user-{i}")
        greet.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": i % 2 == 0})
    evaluator = app_state(greet).evaluator
    greet.portal.call(evaluator.run_once)  # type: ignore[union-attr]
    greet.portal.call(evaluator.run_once)  # type: ignore[union-attr]  # the same news: not stored
    decisions = greet.get(f"/v1/experiments/{ident}/decisions").json()
    found = scrape(greet)
    assert total(found, "rollgraph_experiment_decisions_total", experiment=ident) == len(decisions)
    latest = decisions[0]["statistics"]
    expected = {
        (row["arm"], row["metric"]): row["p_value"]
        for row in latest["metrics"]
        if row.get("p_value") is not None
    }
    got = {
        (s.labels["arm"], s.labels["metric"]): s.value
        for s in found
        if s.name == "rollgraph_experiment_p_value" and s.labels["experiment"] == ident
    }
    assert expected and got == pytest.approx(expected)
    srm = total(found, "rollgraph_experiment_srm_p_value", experiment=ident)
    assert srm == pytest.approx(latest["srm"]["p_value"])
    shares = {
        s.labels["version"]: s.value
        for s in found
        if s.name == "rollgraph_rollout_share_ratio" and s.labels["label"] == "prod"
    }
    assert shares == pytest.approx({"v1": 0.5, "v2": 0.5})  # the experiment's arms
    roles = {
        s.labels["version"]: s.labels["role"]
        for s in found
        if s.name == "rollgraph_rollout_share_ratio" and s.labels["label"] == "prod"
    }
    assert roles == {"v1": "baseline", "v2": "candidate"}
    info = [s for s in found if s.name == "rollgraph_experiment_info"]
    assert [(s.labels, s.value) for s in info] == [
        (
            {
                "experiment": ident,
                "name": experiment["name"],
                "workflow": "greet",
                "label": "prod",
                "baseline": "v1",
            },
            1.0,
        )
    ]
    assert total(found, "rollgraph_experiment_ramp_steps_remaining", experiment=ident) == 0


def test_a_ramp_exports_when_its_step_began_and_the_steps_ahead(greet: TestClient) -> None:
    body = {
        **{k: v for k, v in EXPERIMENT.items() if k != "candidates"},
        "candidate": "v2",
        "ramp": [{"percent": 10}, {"percent": 25}, {"percent": 50}],
    }
    before = time.time()
    created = greet.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.json()
    ident = str(created.json()["id"])
    found = scrape(greet)
    assert total(found, "rollgraph_experiment_ramp_steps_remaining", experiment=ident) == 2
    began = total(found, "rollgraph_experiment_step_started_timestamp_seconds", experiment=ident)
    assert before - 1 <= began <= time.time() + 1  # Unix seconds, not local time
    greet.post(f"/v1/experiments/{ident}/stop")
    found = scrape(greet)
    assert not [s for s in found if s.labels.get("experiment") == ident and "info" in s.name]


# -- several worker processes ------------------------------------------------------------------
@pytest.mark.slow
def test_counts_add_up_over_the_workers_of_a_real_server(
    database_url: str,
    admin_key: str,
    tmp_path: Path,
    serve: Callable[..., AbstractContextManager[str]],
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()  # empty at start, as multiprocess mode requires
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    headers = bearer(admin_key)
    with serve(env, workers=2) as url:

        def call(method: str, path: str, **kw: Any) -> httpx.Response:
            # A new connection per request (no keep-alive): any worker may answer.
            return httpx.request(method, f"{url}{path}", headers=headers, timeout=30, **kw)

        assert call("POST", "/v1/workflows", json={"source": GREET}).status_code == 201
        assert call("PUT", "/v1/workflows/greet/labels/prod", json={"version": "v1"})
        body = {"workflow": "greet", "input": {"prompt": "hi"}}
        runs = 20
        for i in range(runs):
            answered = call("POST", "/v1/run", json={**body, "user_id": f"u{i}"})
            assert answered.status_code == 200, answered.text
        for _ in range(4):  # whichever worker answers the scrape, it sums every worker
            found = samples(call("GET", "/metrics").text)
            assert total(found, "rollgraph_runs_total") == runs
            assert total(found, "rollgraph_assignments_total", reason="label") == runs
            assert total(found, "rollgraph_http_requests_total", route="/v1/run") == runs
            info = [s for s in found if s.name == "rollgraph_build_info"]
            assert [s.value for s in info] == [1.0]  # one series, not one per worker
            shares = [s for s in found if s.name == "rollgraph_rollout_share_ratio"]
            assert [(s.labels["version"], s.value) for s in shares] == [("v1", 1.0)]
        pids = {f.name.rsplit("_", 1)[-1] for f in metrics_dir.glob("counter_*.db")}
        assert len(pids) == 2, pids  # both workers counted runs
