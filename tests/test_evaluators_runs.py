"""Online evaluators on SQLite and PostgreSQL: each succeeded run's scores land as its outcomes
``eval.NAME`` exactly once, after the answer, billed apart from the run; experiments and the
shadow comparison use them like any outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from control_plane.runs.evaluations.service import record_score
from control_plane.runs.execution import Runs
from control_plane.store.db import create_db_engine
from control_plane.store.tables import OutcomeRow, RunRow
from engine.evaluation import Score
from tests.fixtures import GREET, app_client, app_state, seed_workflow

EVALUATORS = """\
evaluators:
  - name: shape
    uses: check
    with: {output: text, present: true, min_length: 3, pattern: "(?i)with"}
  - name: quality
    uses: judge
    budget: {max_cost_usd: 0.01}
    with: {model: sim/judge, rubric: "Is the prompt vivid and concrete?", output: text}
"""
V1 = GREET + EVALUATORS
V2 = V1.replace("writer-small", "writer-large")


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": V1, "v2": V2}, {"prod": "v1", "large": "v2"})
    return api


def runs_of(client: TestClient) -> Runs:
    runs = app_state(client).runs
    assert isinstance(runs, Runs)
    return runs


def drain(client: TestClient) -> None:
    assert client.portal is not None
    client.portal.call(runs_of(client).shadows.drain)
    client.portal.call(runs_of(client).evaluations.drain)


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    engine = create_db_engine(database_url)
    with Session(engine) as session:
        yield session
    engine.dispose()


def outcomes(db: Session, run_id: str) -> dict[str, OutcomeRow]:
    db.expire_all()
    rows = db.exec(select(OutcomeRow).where(OutcomeRow.run_id == run_id)).all()
    return {row.metric: row for row in rows}


def run(client: TestClient, label: str = "prod", user: str = "u1", **extra: Any) -> dict[str, Any]:
    body = {"workflow": "greet", "label": label, "input": {"prompt": "a red sneaker"}}
    response = client.post("/v1/run", json={**body, "user_id": user, **extra})
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


def counter(client: TestClient, name: str, *labels: str) -> float:
    metric = getattr(runs_of(client).metrics.evaluations, name)
    return float(metric.labels(*labels)._value.get())


def test_scores_land_once_per_run_and_evaluator(client: TestClient, db: Session) -> None:
    answer = run(client)
    drain(client)
    got = outcomes(db, answer["run_id"])
    assert set(got) == {"eval.shape", "eval.quality"}
    assert got["eval.shape"].value == 1.0 and got["eval.shape"].detail is not None
    assert got["eval.shape"].detail["failed"] == []
    judged = got["eval.quality"]
    assert 0.5 < judged.value < 0.75  # writer-small's quality figure, 0.62
    assert judged.detail is not None and "write" in judged.detail["reasoning"]
    assert judged.detail["cost_usd"] > 0

    # Evaluated again (a retry, a second process): nothing more is stored or paid for.
    runs = runs_of(client)
    spec = runs.compiler.engine.define(V1).spec
    assert client.portal is not None
    again = client.portal.call(runs.evaluations.evaluate, spec, answer["run_id"])
    assert again == {"shape": "duplicate", "quality": "duplicate"}
    # And a score computed twice (a takeover racing the first evaluation): stored once.
    twice = Score("eval.quality", "mean", 0.1, {"reasoning": "late"})
    with Session(db.get_bind()) as session:
        assert record_score(session, run_id=answer["run_id"], score=twice) == "duplicate"
        session.commit()
    after = outcomes(db, answer["run_id"])
    assert len(after) == 2 and after["eval.quality"].value == judged.value
    assert counter(client, "evaluations", "greet", "quality", "recorded") == 1
    assert counter(client, "evaluations", "greet", "quality", "duplicate") == 1


def test_evaluator_cost_is_billed_apart_from_the_run(client: TestClient, db: Session) -> None:
    answer = run(client)
    drain(client)
    db.expire_all()
    stored = db.get(RunRow, answer["run_id"])
    assert stored is not None and stored.cost_usd == answer["cost_usd"]
    detail = client.get(f"/v1/runs/{answer['run_id']}").json()
    assert detail["cost_usd"] == answer["cost_usd"]
    judge_cost = outcomes(db, answer["run_id"])["eval.quality"].detail or {}
    billed = counter(client, "cost", "greet", "quality")
    assert billed == pytest.approx(judge_cost["cost_usd"]) and billed > 0


def test_the_sim_judge_scores_the_larger_model_higher(client: TestClient, db: Session) -> None:
    scores: dict[str, list[float]] = {"prod": [], "large": []}
    answers = [(label, run(client, label, f"u{i}")) for i in range(4) for label in scores]
    drain(client)
    for label, answer in answers:
        scores[label].append(outcomes(db, answer["run_id"])["eval.quality"].value)
    assert min(scores["large"]) > max(scores["prod"]) + 0.1


def test_sampling_zero_evaluates_nothing(client: TestClient, db: Session) -> None:
    never = V1.replace("    uses: judge\n", "    uses: judge\n    sample: 0\n").replace(
        "    uses: check\n", "    uses: check\n    sample: 0\n"
    )
    seed_workflow(client, "greet", {"v3": never}, {"never": "v3"})
    answers = [run(client, "never", f"u{i}") for i in range(5)]
    drain(client)
    assert all(outcomes(db, a["run_id"]) == {} for a in answers)
    assert counter(client, "evaluations", "greet", "quality", "skipped") == 5


def test_async_runs_are_evaluated_once_stored(client: TestClient, db: Session) -> None:
    accepted = run(client, mode="async")
    deadline = time.monotonic() + 30
    while client.get(f"/v1/runs/{accepted['run_id']}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    drain(client)
    assert set(outcomes(db, accepted["run_id"])) == {"eval.shape", "eval.quality"}


def test_clients_cannot_record_evaluator_scores(client: TestClient) -> None:
    answer = run(client)
    refused = client.post(f"/v1/runs/{answer['run_id']}/outcome", json={"eval.quality": 0.9})
    assert refused.status_code == 422, refused.text


def test_an_experiment_on_an_evaluator_score_needs_no_client_outcome(client: TestClient) -> None:
    experiment = {
        "workflow": "greet",
        "candidates": [{"version": "v2", "percent": 50}],
        "primary": {"name": "eval.quality", "kind": "mean", "direction": "increase", "mde": 0.05},
        "guardrails": [{"name": "eval.shape", "kind": "proportion", "direction": "increase",
                        "margin": 0.05}],
        "min_runs_per_arm": 10,
    }  # fmt: skip
    started = client.post("/v1/experiments", json=experiment)
    assert started.status_code == 201, started.text
    for i in range(60):
        run(client, user=f"user-{i}")
    drain(client)
    results = client.get(f"/v1/experiments/{started.json()['id']}/results")
    assert results.status_code == 200, results.text
    primary = next(
        m for m in results.json()["metrics"] if (m["arm"], m["metric"]) == ("v2", "eval.quality")
    )
    assert primary["role"] == "primary"
    assert primary["effect"] > 0.1  # writer-large's 0.86 against writer-small's 0.62


def test_the_shadow_comparison_includes_evaluator_scores(client: TestClient) -> None:
    shadow = "/v1/workflows/greet/labels/prod/shadow"
    body = {"version": "v2", "percent": 100, "max_cost_usd_per_hour": 100}
    assert client.put(shadow, json=body).status_code == 200
    for i in range(6):
        run(client, user=f"u{i}")
    drain(client)
    drain(client)  # the shadow runs' evaluations are offered once their batch is stored
    comparison = client.get(f"{shadow}/comparison").json()
    metrics = {m["metric"]: m for m in comparison["metrics"]}
    assert {"eval.quality", "eval.shape"} <= set(metrics)
    assert metrics["eval.quality"]["pairs"] == 6
    assert metrics["eval.quality"]["mean_difference"] > 0.1
    assert client.portal is not None  # every run, served or shadow, is no longer due
    assert client.portal.call(runs_of(client).evaluations.requeue_due) == 0


@pytest.fixture
def retrying(database_url: str, admin_key: str) -> Iterator[TestClient]:
    """An app whose sweep re-offers a due run at once (``evaluation_retry_s`` 0)."""
    with app_client(database_url, admin_key, evaluation_retry_s=0) as client:
        seed_workflow(client, "greet", {"v1": V1}, {"prod": "v1"})
        yield client


def test_a_run_left_unscored_by_a_stopped_process_is_scored_once_by_the_sweep(
    retrying: TestClient, db: Session
) -> None:
    client, runs = retrying, runs_of(retrying)
    assert client.portal is not None
    client.portal.call(runs.evaluations.aclose)  # its process stops before it evaluates
    client.portal.call(runs.evaluations.start)  # (a queue that no worker takes)
    client.portal.call(runs.evaluations.aclose)
    first, second = run(client, user="u1"), run(client, user="u2")
    for answer in (first, second):
        db.expire_all()
        stored = db.get(RunRow, answer["run_id"])
        assert stored is not None and stored.evaluation_due_at is not None
        assert outcomes(db, answer["run_id"]) == {}
    # The first run's evaluation was cut short after one score was stored.
    partial_score = Score("eval.shape", "proportion", 1.0, {"failed": []})
    with Session(db.get_bind()) as session:
        assert record_score(session, run_id=first["run_id"], score=partial_score) == "recorded"
        session.commit()

    client.portal.call(runs.evaluations.start)  # another process takes over: its sweep
    assert client.portal.call(runs.evaluations.requeue_due) == 2
    drain(client)
    for answer in (first, second):
        got = outcomes(db, answer["run_id"])
        assert set(got) == {"eval.shape", "eval.quality"}
        stored = db.get(RunRow, answer["run_id"])
        assert stored is not None and stored.evaluation_due_at is None
    assert counter(client, "evaluations", "greet", "shape", "duplicate") == 1
    assert counter(client, "evaluations", "greet", "quality", "recorded") == 2
    assert client.portal.call(runs.evaluations.requeue_due) == 0  # nothing due any more
    assert client.portal.call(lambda: runs.sweep(expire=False)) == 0


def test_a_run_out_of_every_sample_is_never_due(client: TestClient, db: Session) -> None:
    never = V1.replace("    uses: judge\n", "    uses: judge\n    sample: 0\n").replace(
        "    uses: check\n", "    uses: check\n    sample: 0\n"
    )
    seed_workflow(client, "greet", {"v3": never}, {"never": "v3"})
    answer = run(client, "never")
    db.expire_all()
    stored = db.get(RunRow, answer["run_id"])
    assert stored is not None and stored.evaluation_due_at is None
