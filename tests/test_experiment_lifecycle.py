"""An experiment's lifecycle on SQLite and PostgreSQL: a halt is visible and keeps the traffic
where it was, a person resumes or stops it; no experiment halts at birth; a fixed-horizon test
ends at its horizon; what acted is what the results, decisions and audit log show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from control_plane.experiments.evaluator import evaluate as evaluate_at
from control_plane.experiments.verdict import duration
from control_plane.kit.time import as_utc
from control_plane.store.db import create_db_engine
from control_plane.store.tables import ArmUnitStatRow, ExperimentRow
from tests.fixtures import bearer, new_key
from tests.test_experiments import EXPERIMENT, evaluate, run
from tests.test_experiments import client as client  # the seeded-app fixture

RAMP: dict[str, Any] = {
    **EXPERIMENT,
    "candidates": [],
    "candidate": "v2",
    "min_runs_per_arm": 5,
    "ramp": [{"percent": 50, "min_runs": 5}, {"percent": 100}],
}


@pytest.fixture
def store(database_url: str) -> Iterator[Session]:
    """A session on the app's database, as another process sees it."""
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            yield session
    finally:
        db.dispose()


def converting(client: TestClient, users: range, rate: dict[str, float]) -> list[dict[str, Any]]:
    """Runs for ``users``; each arm converts exactly ``rate[version]`` of its runs (every
    k-th), whatever the random split, so equal rates are no difference at all."""
    runs, seen = [], Counter[str]()
    for i in users:
        r = run(client, f"user-{i}")
        seen[r["version"]] += 1
        converted = seen[r["version"]] % round(1 / rate[r["version"]]) == 0
        client.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": converted})
        runs.append(r)
    return runs


def log_users_three_times(store: Session, experiment_id: int, arm: str) -> None:
    """Broken logging: every user of ``arm`` is counted three times (all sums tripled, so the
    statistics stay consistent, only the split is wrong)."""
    rows = store.exec(
        select(ArmUnitStatRow).where(
            ArmUnitStatRow.experiment_id == experiment_id, ArmUnitStatRow.arm == arm
        )
    ).all()
    assert rows
    for row in rows:
        row.units *= 3
        for name in ("sum_n", "sum_s", "sum_nn", "sum_ss", "sum_sn"):
            setattr(row, name, getattr(row, name) * 3)
        store.add(row)
    store.commit()


def test_a_halt_is_visible_keeps_the_traffic_and_a_person_resumes_then_stops_it(
    client: TestClient, store: Session
) -> None:
    experiment = client.post("/v1/experiments", json=RAMP).json()
    ident = experiment["id"]
    before = converting(client, range(100), {"v1": 0.5, "v2": 0.5})
    log_users_three_times(store, ident, "v1")

    assert evaluate(client) == {ident: "halt"}  # not "ramp", though the step's gate passed
    halted = client.get(f"/v1/experiments/{ident}").json()
    assert halted["status"] == "halted" and halted["halted_at"] is not None
    assert [r["code"] for r in halted["halt_reasons"]] == ["srm"]
    assert "Sample ratio mismatch" in halted["halt_reasons"][0]["message"]
    # Traffic stays where it was: the same step, shares, experiment and sticky users.
    assert (halted["step"], halted["arms"]) == (0, [{"version": "v2", "share": 0.5}])
    again = [run(client, f"user-{i}") for i in range(20)]
    assert [r["version"] for r in again] == [r["version"] for r in before[:20]]
    assert all(r["experiment_id"] == ident for r in again)
    assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v3"}).status_code == 409
    # The evaluator leaves it to a person: no ramp, no new decision.
    assert evaluate(client) == {}
    assert client.post(f"/v1/experiments/{ident}/evaluate").status_code == 409
    assert client.get(f"/v1/experiments/{ident}").json()["step"] == 0
    listed = client.get("/v1/experiments", params={"status": "halted"}).json()
    assert [e["id"] for e in listed] == [ident]
    # Its gauges stay, so the sample ratio alert (rules.yml) keeps firing until someone acts.
    scraped = client.get("/metrics").text
    assert f'rollgraph_experiment_info{{baseline="v1",experiment="{ident}"' in scraped
    assert f'rollgraph_experiment_srm_p_value{{experiment="{ident}"}}' in scraped

    # Results, decisions and audit agree on what acted and why.
    results = client.get(f"/v1/experiments/{ident}/results").json()
    assert (results["action"], results["applied"]) == ("halt", "halt")
    assert results["reasons"][0]["code"] == "srm" and results["srm"]["flagged"] is True
    decision = client.get(f"/v1/experiments/{ident}/decisions").json()[0]
    assert (decision["action"], decision["applied"]) == ("halt", "halt")
    assert decision["statistics"]["action"] == "halt"
    audited = client.get("/v1/audit", params={"target_kind": "experiment"}).json()[0]
    assert (audited["action"], audited["actor"]) == ("experiment.halt", "evaluator")
    assert audited["after"]["reasons"][0]["code"] == "srm"
    assert audited["after"]["reasons"][0]["message"] == halted["halt_reasons"][0]["message"]
    assert audited["after"]["statistics"]["srm"]["flagged"] is True

    viewer = bearer(new_key(client, "looker", "viewer"))
    assert client.post(f"/v1/experiments/{ident}/resume", headers=viewer).status_code == 403
    resumed = client.post(f"/v1/experiments/{ident}/resume")
    assert resumed.status_code == 200, resumed.json()
    assert (resumed.json()["status"], resumed.json()["acknowledged"]) == ("running", ["srm"])
    assert resumed.json()["halt_reasons"] is None
    assert client.post(f"/v1/experiments/{ident}/resume").status_code == 409  # running
    # The evaluator goes on: the acknowledged mismatch halts no more, and the rules run again.
    assert evaluate(client) == {ident: "ramp"}
    assert client.get(f"/v1/experiments/{ident}").json()["step"] == 1

    stopped = client.post(f"/v1/experiments/{ident}/stop").json()
    assert stopped["status"] == "stopped" and stopped["arms"] == [{"version": "v2", "share": 0.0}]
    after = run(client, "user-3")
    assert (after["version"], after["experiment_id"]) == ("v1", None)  # the baseline, all of it
    ended = client.get(f"/v1/experiments/{ident}/results").json()
    assert (ended["action"], ended["applied"]) == ("stop", "stop")
    actions = [a["action"] for a in client.get("/v1/audit", params={"target_kind": "experiment"})
               .json()]  # fmt: skip
    assert actions[:4] == ["experiment.stop", "experiment.ramp", "experiment.resume",
                           "experiment.halt"]  # fmt: skip
    audit = client.get("/v1/audit", params={"target_kind": "experiment"}).json()
    assert audit[2]["after"]["acknowledged"] == ["srm"] and audit[2]["actor"] == "bootstrap-admin"


def test_a_halted_experiment_can_be_stopped_and_says_why_it_halted(client: TestClient) -> None:
    experiment = client.post("/v1/experiments", json={**EXPERIMENT, "no_traffic_timeout_s": 0.001})
    ident = experiment.json()["id"]
    assert evaluate(client) == {ident: "halt"}
    stopped = client.post(f"/v1/experiments/{ident}/stop").json()
    assert stopped["status"] == "stopped" and "no run for" in stopped["outcome"]
    assert stopped["halt_reasons"][0]["code"] == "no_traffic"  # kept: why it was halted
    assert client.post(f"/v1/experiments/{ident}/stop").status_code == 409
    assert client.post(f"/v1/experiments/{ident}/resume").status_code == 409
    assert client.post("/v1/experiments/999/resume").status_code == 404


def test_no_traffic_resumed_halts_no_more(client: TestClient) -> None:
    body = {**EXPERIMENT, "no_traffic_timeout_s": 0.001}
    ident = client.post("/v1/experiments", json=body).json()["id"]
    assert evaluate(client) == {ident: "halt"}
    assert client.post(f"/v1/experiments/{ident}/resume").json()["acknowledged"] == ["no_traffic"]
    assert evaluate(client) == {ident: None}
    latest = client.get(f"/v1/experiments/{ident}/decisions").json()[0]
    assert latest["action"] == "continue" and latest["applied"] is None
    waiting = next(r for r in latest["reasons"] if r["code"] == "no_traffic")
    assert "acknowledged" in waiting["message"]


def test_an_experiment_does_not_halt_at_birth(client: TestClient, store: Session) -> None:
    ident = client.post("/v1/experiments", json=EXPERIMENT).json()["id"]
    assert evaluate(client) == {ident: None}  # no run in any arm yet
    born = client.get(f"/v1/experiments/{ident}/decisions").json()[0]
    assert born["action"] == "continue" and born["statistics"]["analysis"]["action"] == "halt"
    assert {r["code"] for r in born["reasons"]} == {"no_data"}
    assert all("waiting for data; continue" in r["message"] for r in born["reasons"])
    # Runs, but their outcomes have not arrived: still no halt.
    for i in range(60):
        run(client, f"user-{i}")
    assert evaluate(client) == {ident: None}
    early = client.get(f"/v1/experiments/{ident}/results").json()
    assert early["action"] == "continue" and early["experiment"]["status"] == "running"
    missing = [r for r in early["reasons"] if r["code"] == "metric_no_data"]
    assert missing and all("no converted data yet" in r["message"] for r in missing)
    # An hour on (the no-traffic timeout) with 10+ users per arm, outcomes still missing: halt.
    row = store.get(ExperimentRow, ident)
    assert row is not None
    row.created_at = as_utc(row.created_at) - timedelta(hours=2)
    store.add(row)
    store.commit()
    run(client, "user-60")  # traffic flows: it is the outcomes that are missing
    assert evaluate(client) == {ident: "halt"}
    halted = client.get(f"/v1/experiments/{ident}").json()
    assert {r["code"] for r in halted["halt_reasons"]} == {"metric_no_data"}
    assert "outcomes are not arriving" in halted["halt_reasons"][0]["message"]


@pytest.mark.parametrize(
    ("rates", "auto_promote", "outcome"),
    [
        ({"v1": 0.5, "v2": 0.5}, False, "inconclusive at the planned horizon"),
        ({"v1": 0.5, "v2": 1.0}, False, "promote v2"),
    ],
)
def test_a_fixed_test_ends_at_its_horizon(
    client: TestClient, rates: dict[str, float], auto_promote: bool, outcome: str
) -> None:
    body = {**EXPERIMENT, "method": "fixed", "auto_promote": auto_promote,
            "primary": {**EXPERIMENT["primary"], "mde": 0.5, "relative": False}}  # fmt: skip
    ident = client.post("/v1/experiments", json=body).json()["id"]
    converting(client, range(6), rates)
    assert evaluate(client) == {ident: None}  # far below its horizon: it reports, never acts
    converting(client, range(6, 120), rates)
    assert evaluate(client) == {ident: "end"}
    ended = client.get(f"/v1/experiments/{ident}").json()
    assert ended["status"] == "stopped" and outcome in ended["outcome"]
    assert ended["arms"] == [{"version": "v2", "share": 0.0}]
    results = client.get(f"/v1/experiments/{ident}/results").json()
    assert results["applied"] == "end"
    decision = client.get(f"/v1/experiments/{ident}/decisions").json()[0]
    assert decision["applied"] == "end" and decision["statistics"]["final"] is True
    audited = client.get("/v1/audit", params={"target_kind": "experiment"}).json()[0]
    assert audited["action"] == "experiment.end" and audited["after"]["reasons"]
    assert evaluate(client) == {}  # acted on once


def test_guardrail_correction_round_trips_and_reaches_the_analysis(client: TestClient) -> None:
    guard = {"guardrails": [{"name": "latency_s", "direction": "decrease"}]}
    on = client.post("/v1/experiments", json={**EXPERIMENT, **guard}).json()
    assert on["config"]["guardrail_correction"] is True
    converting(client, range(40), {"v1": 0.5, "v2": 0.5})
    rows = client.get(f"/v1/experiments/{on['id']}/results").json()["metrics"]
    corrected = next(m for m in rows if (m["arm"], m["metric"]) == ("v2", "latency_s"))
    assert corrected["adjusted_p"] is not None  # Holm across the margin-0 guardrails
    client.post(f"/v1/experiments/{on['id']}/stop")
    body = {**EXPERIMENT, **guard, "guardrail_correction": False}
    off = client.post("/v1/experiments", json=body).json()
    assert off["config"]["guardrail_correction"] is False
    converting(client, range(40), {"v1": 0.5, "v2": 0.5})
    rows = client.get(f"/v1/experiments/{off['id']}/results").json()["metrics"]
    plain = next(m for m in rows if (m["arm"], m["metric"]) == ("v2", "latency_s"))
    assert plain["adjusted_p"] is None and plain["p_value"] is not None
    bad = client.post("/v1/experiments", json={**EXPERIMENT, "guardrail_correction": "maybe"})
    assert bad.status_code == 422 and "guardrail_correction" in str(bad.json())


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.001, "0.001 s"), (10, "10 s"), (59, "59 s"), (90, "1.5 min"), (600, "10 min"),
     (3600, "1 h"), (5400, "1.5 h")],
)  # fmt: skip
def test_durations_are_said_in_their_own_unit(seconds: float, words: str) -> None:
    assert duration(seconds) == words


def test_a_ten_second_timeout_reads_in_seconds(client: TestClient, store: Session) -> None:
    body = {**EXPERIMENT, "no_traffic_timeout_s": 10}
    ident = client.post("/v1/experiments", json=body).json()["id"]
    created = store.get(ExperimentRow, ident)
    assert created is not None
    done = evaluate_at(
        store, experiment_id=ident, now=as_utc(created.created_at) + timedelta(seconds=30)
    )
    store.commit()
    assert done is not None and done.applied == "halt"
    assert done.reasons[0]["message"] == "no run for 30 s (timeout 10 s): halt"
