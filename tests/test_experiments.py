"""Experiments and outcomes on SQLite and PostgreSQL: starting one (and what is refused), the
label's traffic split by the experiment's own salt, per-arm statistics kept in step with the
runs and outcomes, outcomes recorded once per run and metric, stopping."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from control_plane.store.db import create_db_engine
from control_plane.store.tables import ArmUnitStatRow
from tests.fixtures import GREET, GREET_LARGE, seed_workflow

V1 = GREET
V2 = GREET_LARGE
V3 = V1.replace("prompt.enhance", "llm.generate")
EXPERIMENT: dict[str, Any] = {
    "workflow": "greet",
    "candidates": [{"version": "v2", "percent": 50}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "guardrails": [{"name": "success", "direction": "increase", "margin": 0.01}],
    "min_runs_per_arm": 10,
}


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": V1, "v2": V2, "v3": V3}, {"prod": "v1"})
    return api


def run(client: TestClient, user: str) -> dict[str, Any]:
    response = client.post(
        "/v1/run", json={"workflow": "greet", "input": {"prompt": "hi"}, "user_id": user}
    )
    assert response.status_code == 200, response.json()
    result: dict[str, Any] = response.json()
    return result


def arm_stats(database_url: str, experiment_id: int) -> dict[tuple[str, str], ArmUnitStatRow]:
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            rows = session.exec(
                select(ArmUnitStatRow).where(ArmUnitStatRow.experiment_id == experiment_id)
            ).all()
            return {(r.arm, r.metric): r for r in rows}
    finally:
        db.dispose()


def test_an_experiment_splits_the_label_and_keeps_per_arm_statistics(
    client: TestClient, database_url: str
) -> None:
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v3", "percent": 50})
    started = client.post("/v1/experiments", json=EXPERIMENT)
    assert started.status_code == 201, started.json()
    experiment = started.json()
    assert (experiment["status"], experiment["baseline"], experiment["arms"]) == (
        "running",
        "v1",
        [{"version": "v2", "share": 0.5}],
    )
    runs = [run(client, f"user-{i}") for i in range(120)]
    served = Counter(r["version"] for r in runs)
    assert set(served) == {"v1", "v2"}  # the experiment, not the rollout (v3), routes prod
    assert 30 <= served["v2"] <= 90, served
    assert all(r["experiment_id"] == experiment["id"] for r in runs)
    assert all(r["reason"].startswith(f"experiment {experiment['id']} bucket ") for r in runs)
    repeat = run(client, "user-7")
    assert repeat["version"] == runs[7]["version"]  # sticky

    converted = {r["run_id"] for r in runs[::3]}
    for r in runs:
        body = {"converted": r["run_id"] in converted, "rating": 4.5}
        response = client.post(f"/v1/runs/{r['run_id']}/outcome", json=body)
        assert response.status_code == 200, response.json()
        assert response.json()["metrics"] == {"converted": "recorded", "rating": "recorded"}

    stats = arm_stats(database_url, experiment["id"])
    for arm in ("v1", "v2"):
        mine = [r for r in runs if r["version"] == arm]
        every = mine + ([repeat] if repeat["version"] == arm else [])
        assert stats[(arm, "success")].sum_n == len(every)  # runs, over the arm's users
        assert stats[(arm, "success")].sum_s == len(every)  # all succeeded
        assert stats[(arm, "cost_usd")].sum_s == pytest.approx(sum(r["cost_usd"] for r in every))
        assert stats[(arm, "latency_s")].sum_s == pytest.approx(
            sum(r["latency_s"] for r in every), rel=1e-6
        )
        assert stats[(arm, "converted")].sum_n == len(mine)
        assert stats[(arm, "converted")].sum_s == sum(r["run_id"] in converted for r in mine)
        assert stats[(arm, "rating")].sum_s == pytest.approx(4.5 * len(mine))

    stopped = client.post(f"/v1/experiments/{experiment['id']}/stop")
    assert stopped.json()["status"] == "stopped"
    after = run(client, "user-1")
    assert after["experiment_id"] is None and after["reason"].startswith("rollout bucket ")
    listed = client.get("/v1/experiments", params={"status": "stopped"}).json()
    assert [e["id"] for e in listed] == [experiment["id"]]
    actions = [a["action"] for a in client.get("/v1/audit").json()]
    assert "experiment.start" in actions and "experiment.stop" in actions


def test_outcomes_are_recorded_once_per_run_and_metric(client: TestClient) -> None:
    run_id = run(client, "u1")["run_id"]
    path = f"/v1/runs/{run_id}/outcome"
    assert client.post(path, json={"converted": True}).json()["metrics"] == {
        "converted": "recorded"
    }
    assert client.post(path, json={"converted": True}).json()["metrics"] == {
        "converted": "unchanged"
    }
    refused = client.post(path, json={"converted": False})
    assert refused.status_code == 409 and "recorded once" in refused.json()["error"]["message"]
    # The kind is fixed per workflow by the first value: a number for `converted` is refused.
    other = run(client, "u2")["run_id"]
    wrong = client.post(f"/v1/runs/{other}/outcome", json={"converted": 3})
    assert wrong.status_code == 422 and "proportion" in wrong.json()["error"]["message"]
    assert client.post(f"/v1/runs/{other}/outcome", json={"success": True}).status_code == 422
    assert client.post("/v1/runs/nope/outcome", json={"converted": True}).status_code == 404
    assert client.post(path, json={}).status_code == 422
    assert client.post(path, json={"bad name": 1}).status_code == 422
    assert client.post(path, json={"rating": "high"}).status_code == 422


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"candidates": [{"version": "v1", "percent": 10}]}, 409, "already the version"),
        ({"candidates": [{"version": "v9", "percent": 10}]}, 404, "no version"),
        ({"candidates": []}, 422, "either"),
        ({"candidates": [], "candidate": "v2", "ramp": [{"percent": 10}, {"percent": 5}]},
         422, "rise"),
        ({"primary": {"name": "converted", "direction": "increase", "mde": 0.1}}, 422, "kind"),
        ({"primary": {"name": "success", "kind": "mean", "direction": "increase", "mde": 1}},
         422, "built-in"),
        ({"label": "staging"}, 404, "no label"),
    ],
)  # fmt: skip
def test_experiments_that_cannot_start_say_why(
    client: TestClient, change: dict[str, Any], status: int, message: str
) -> None:
    response = client.post("/v1/experiments", json={**EXPERIMENT, **change})
    assert response.status_code == status, response.json()
    assert message in str(response.json())
    assert client.get("/v1/experiments").json() == []


def test_one_running_experiment_per_label(client: TestClient) -> None:
    first = client.post("/v1/experiments", json=EXPERIMENT).json()
    again = client.post("/v1/experiments", json=EXPERIMENT)
    assert (
        again.status_code == 409 and f"experiment {first['id']}" in again.json()["error"]["message"]
    )
    # It owns the label's traffic: neither the label nor its rollout moves underneath it.
    for method, path, body in (
        ("PUT", "/v1/workflows/greet/labels/prod", {"version": "v2"}),
        ("POST", "/v1/workflows/greet/labels/prod/rollback", None),
        ("PUT", "/v1/workflows/greet/rollouts/prod", {"version": "v3", "percent": 5}),
    ):
        refused = client.request(method, path, json=body)
        assert refused.status_code == 409, refused.json()
        assert f"experiment {first['id']} runs on greet:prod" in refused.json()["error"]["message"]
    assert client.put("/v1/workflows/greet/labels/staging", json={"version": "v2"}).is_success
    client.post(f"/v1/experiments/{first['id']}/stop")
    assert client.post(f"/v1/experiments/{first['id']}/stop").status_code == 409
    assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v3"}).is_success
    assert client.post("/v1/experiments", json=EXPERIMENT).status_code == 201
    assert client.get("/v1/experiments/999").status_code == 404


def test_a_ramp_starts_at_its_first_step(client: TestClient) -> None:
    body = {**EXPERIMENT, "candidates": [], "candidate": "v2",
            "ramp": [{"percent": 1}, {"percent": 5}, {"percent": 50}]}  # fmt: skip
    started = client.post("/v1/experiments", json=body)
    assert started.status_code == 201, started.json()
    assert started.json()["arms"] == [{"version": "v2", "share": 0.01}]
    assert started.json()["step"] == 0


def test_results_analyse_the_stored_statistics(client: TestClient) -> None:
    experiment = client.post("/v1/experiments", json=EXPERIMENT).json()
    runs = [run(client, f"user-{i}") for i in range(80)]
    for i, r in enumerate(runs):  # v2 converts 9 times in 10, v1 1 in 10: no test can miss it
        converted = (r["version"] == "v2") != (i % 10 == 0)
        client.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": converted})
    response = client.get(f"/v1/experiments/{experiment['id']}/results")
    assert response.status_code == 200, response.json()
    results = response.json()
    assert results["reasons"] and all(r["code"] and r["message"] for r in results["reasons"])
    primary = next(m for m in results["metrics"] if (m["arm"], m["metric"]) == ("v2", "converted"))
    assert primary["role"] == "primary"
    assert 0.6 < primary["effect"] < 1.0
    assert primary["p_value"] is not None and primary["p_value"] < 0.05
    assert (results["action"], results["winner"]) == ("promote", "v2")
    assert "promote v2" in results["reasons"][0]["message"]
    n_v2 = sum(r["version"] == "v2" for r in runs)
    assert results["srm"]["observed"] == {"v1": len(runs) - n_v2, "v2": n_v2}
    assert client.get("/v1/experiments/999/results").status_code == 404


def prod_version(client: TestClient) -> str:
    labels = client.get("/v1/workflows/greet/labels").json()
    version: str = next(label["version"] for label in labels if label["name"] == "prod")
    return version


def evaluate(client: TestClient) -> dict[int, str | None]:
    evaluator = client.app.state.evaluator  # type: ignore[attr-defined]
    applied: dict[int, str | None] = client.portal.call(evaluator.run_once)  # type: ignore[union-attr]
    return applied


def traffic(client: TestClient, users: range, rate: dict[str, int]) -> list[dict[str, Any]]:
    """Runs for ``users``; a run converts for i % 10 < rate[version] (so rate 9 is 90 %)."""
    runs = []
    for i in users:
        r = run(client, f"user-{i}")
        converted = i % 10 < rate[r["version"]]
        client.post(f"/v1/runs/{r['run_id']}/outcome", json={"converted": converted})
        runs.append(r)
    return runs


def test_the_evaluator_rolls_a_worse_candidate_back(client: TestClient) -> None:
    experiment = client.post("/v1/experiments", json=EXPERIMENT).json()
    traffic(client, range(100), {"v1": 9, "v2": 1})
    assert evaluate(client) == {experiment["id"]: "rollback"}
    ended = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert ended["status"] == "rolled_back"
    assert ended["arms"] == [{"version": "v2", "share": 0.0}]
    assert "roll back" in ended["outcome"]
    assert prod_version(client) == "v1"
    after = run(client, "user-2")
    assert (after["version"], after["experiment_id"]) == ("v1", None)
    decisions = client.get(f"/v1/experiments/{experiment['id']}/decisions").json()
    assert decisions[0]["applied"] == "rollback" and decisions[0]["action"] == "rollback"
    assert decisions[0]["statistics"]["metrics"]
    audit = client.get("/v1/audit", params={"target_kind": "experiment"}).json()
    assert audit[0]["action"] == "experiment.rollback"
    assert audit[0]["after"]["statistics"]["reasons"]
    assert evaluate(client) == {}  # nothing runs any more
    # Ended: its results are judged against the shares its traffic had, not the 0 % it ends on.
    final = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    assert final["srm"]["flagged"] is False and final["action"] == "rollback"
    assert final["applied"] == "rollback" and final["reasons"] == decisions[0]["reasons"]


def test_the_evaluator_promotes_a_better_candidate_when_allowed(client: TestClient) -> None:
    body = {**EXPERIMENT, "auto_promote": True}
    experiment = client.post("/v1/experiments", json=body).json()
    traffic(client, range(100), {"v1": 1, "v2": 9})
    assert evaluate(client) == {experiment["id"]: "promote"}
    assert client.get(f"/v1/experiments/{experiment['id']}").json()["status"] == "promoted"
    assert prod_version(client) == "v2"


def test_a_ramp_advances_when_its_gate_passes(client: TestClient) -> None:
    body = {**EXPERIMENT, "candidates": [], "candidate": "v2", "min_runs_per_arm": 5,
            "ramp": [{"percent": 20, "min_runs": 5}, {"percent": 50, "min_runs": 5},
                     {"percent": 100}]}  # fmt: skip
    experiment = client.post("/v1/experiments", json=body).json()
    assert evaluate(client) == {experiment["id"]: None}  # no data: the gate holds
    # 100 users at 20 %: fewer than 5 in the candidate arm has a chance of about 1 in 100,000.
    traffic(client, range(100), {"v1": 5, "v2": 5})
    assert evaluate(client) == {experiment["id"]: "ramp"}
    moved = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert (moved["step"], moved["arms"]) == (1, [{"version": "v2", "share": 0.5}])
    assert evaluate(client) == {experiment["id"]: None}  # no runs at step 1 yet
    held = client.get(f"/v1/experiments/{experiment['id']}/decisions").json()[0]
    assert any(r["code"] == "ramp_held" for r in held["reasons"])
    traffic(client, range(100, 140), {"v1": 5, "v2": 5})
    assert evaluate(client) == {experiment["id"]: "ramp"}
    assert client.get(f"/v1/experiments/{experiment['id']}").json()["step"] == 2


def test_no_traffic_halts_the_experiment_visibly(client: TestClient) -> None:
    body = {**EXPERIMENT, "no_traffic_timeout_s": 0.001}
    experiment = client.post("/v1/experiments", json=body).json()
    assert evaluate(client) == {experiment["id"]: "halt"}
    decision = client.get(f"/v1/experiments/{experiment['id']}/decisions").json()[0]
    assert (decision["action"], decision["applied"]) == ("halt", "halt")
    assert decision["reasons"][0]["code"] == "no_traffic"
    audited = client.get("/v1/audit", params={"target_kind": "experiment"}).json()[0]
    assert audited["action"] == "experiment.halt" and audited["actor"] == "evaluator"
    assert audited["after"]["reasons"][0]["code"] == "no_traffic"
    assert "statistics" in audited["after"]
    assert evaluate(client) == {}  # halted: the evaluator leaves it to a person
    assert len(client.get(f"/v1/experiments/{experiment['id']}/decisions").json()) == 1
    halted = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert halted["status"] == "halted" and halted["halt_reasons"][0]["code"] == "no_traffic"


def test_an_absolute_bound_rolls_back_without_a_significant_difference(
    client: TestClient,
) -> None:
    body = {**EXPERIMENT, "bounds": [{"metric": "converted", "min": 0.5, "after_runs": 10}]}
    experiment = client.post("/v1/experiments", json=body).json()
    path = f"/v1/experiments/{experiment['id']}/evaluate"
    traffic(client, range(8), {"v1": 1, "v2": 1})
    held = client.post(path).json()  # under 10 runs per arm: the bound is not judged yet
    assert held["applied"] is None
    assert all(r["code"] != "bound_crossed" for r in held["reasons"])
    traffic(client, range(8, 60), {"v1": 1, "v2": 1})  # both arms convert 10 %: no difference
    done = client.post(path).json()
    assert (done["action"], done["applied"]) == ("rollback", "rollback")
    assert done["reasons"][0]["code"] == "bound_crossed"
    assert "the bound is at least 0.5" in done["reasons"][0]["message"]
    # What acted is what is shown: the results and the audit entry carry the crossed bound (the
    # comparison alone, which knows no bounds, is beside it under "analysis").
    shown = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    assert (shown["action"], shown["applied"]) == ("rollback", "rollback")
    assert shown["reasons"] == done["reasons"] and "analysis" in shown
    audited = client.get("/v1/audit", params={"target_kind": "experiment"}).json()[0]
    assert audited["action"] == "experiment.rollback"
    assert audited["after"]["reasons"][0]["code"] == "bound_crossed"
    assert client.post(path).status_code == 409  # it ended
    assert client.post("/v1/experiments/999/evaluate").status_code == 404
    refused = client.post("/v1/experiments", json={**EXPERIMENT, "bounds": [{"metric": "x"}]})
    assert refused.status_code == 422 and "needs `min` or `max`" in str(refused.json())


def test_one_process_at_a_time_evaluates_an_experiment(
    client: TestClient, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite serves one machine")
    from sqlalchemy import text

    experiment = client.post("/v1/experiments", json=EXPERIMENT).json()
    db = create_db_engine(database_url)
    try:
        with db.connect() as other:  # another process, in the middle of evaluating it
            other.execute(
                text("SELECT pg_advisory_lock(:space, :id)"),
                {"space": 0x7267, "id": experiment["id"]},
            )
            assert evaluate(client) == {}
            assert client.get(f"/v1/experiments/{experiment['id']}/decisions").json() == []
            other.execute(
                text("SELECT pg_advisory_unlock(:space, :id)"),
                {"space": 0x7267, "id": experiment["id"]},
            )
        assert evaluate(client) == {experiment["id"]: None}
        assert len(client.get(f"/v1/experiments/{experiment['id']}/decisions").json()) == 1
    finally:
        db.dispose()


def test_secondary_metrics_are_analysed_with_the_chosen_correction(client: TestClient) -> None:
    body = {
        **EXPERIMENT,
        "secondary": [
            {"name": "rating", "kind": "mean", "direction": "increase"},
            {"name": "latency_s", "direction": "decrease"},  # a built-in knows its kind
        ],
        "correction": "benjamini_hochberg",
    }
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.json()
    experiment = created.json()
    assert experiment["config"]["correction"] == "benjamini_hochberg"
    assert experiment["config"]["secondary"][1]["kind"] == "mean"
    runs = [run(client, f"user-{i}") for i in range(60)]
    for i, r in enumerate(runs):
        outcome = {"converted": i % 3 == 0, "rating": float(i % 5) + (r["version"] == "v2")}
        client.post(f"/v1/runs/{r['run_id']}/outcome", json=outcome)
    results = client.get(f"/v1/experiments/{experiment['id']}/results").json()
    rows = [m for m in results["metrics"] if m["role"] == "secondary" and m["arm"] == "v2"]
    assert {m["metric"] for m in rows} == {"rating", "latency_s"}
    for m in rows:
        assert m["p_value"] is not None and m["adjusted_p"] is not None
        assert m["adjusted_p"] >= m["p_value"]
    assert client.post(f"/v1/experiments/{experiment['id']}/stop").status_code == 200
    plain = client.post("/v1/experiments", json=EXPERIMENT).json()
    assert plain["config"]["correction"] == "holm" and plain["config"]["secondary"] == []


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"secondary": [{"name": "rating", "direction": "increase"}]}, 422, "kind"),
        ({"secondary": [{"name": "cost_usd", "kind": "proportion", "direction": "decrease"}]},
         422, "built-in"),
        ({"secondary": [{"name": "converted", "kind": "proportion", "direction": "increase"}]},
         422, "named twice"),
        ({"correction": "bonferroni"}, 422, "correction"),
    ],
)  # fmt: skip
def test_secondary_metrics_that_cannot_start_say_why(
    client: TestClient, change: dict[str, Any], status: int, message: str
) -> None:
    response = client.post("/v1/experiments", json={**EXPERIMENT, **change})
    assert response.status_code == status, response.json()
    assert message in str(response.json())


def test_a_secondary_metric_keeps_its_kind_per_workflow(client: TestClient) -> None:
    run_id = run(client, "u1")["run_id"]
    client.post(f"/v1/runs/{run_id}/outcome", json={"rating": 4.5})  # rating is a mean now
    body = {**EXPERIMENT, "secondary": [{"name": "rating", "kind": "proportion",
                                         "direction": "increase"}]}  # fmt: skip
    response = client.post("/v1/experiments", json=body)
    assert response.status_code == 409 and "mean" in response.json()["error"]["message"]


def test_a_timeout_under_a_minute_is_said_in_seconds(client: TestClient) -> None:
    body = {**EXPERIMENT, "no_traffic_timeout_s": 0.001}
    experiment = client.post("/v1/experiments", json=body).json()
    evaluate(client)
    decision = client.get(f"/v1/experiments/{experiment['id']}/decisions").json()[0]
    message = decision["reasons"][0]["message"]
    assert "(timeout 0.001 s): halt" in message and " min" not in message
