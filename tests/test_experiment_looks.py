"""The series of looks at an experiment (``GET /v1/experiments/{id}/looks``) on SQLite and
PostgreSQL: a look is stored when the data moved and not when it did not, each holds the
candidate's effect and interval as the results showed them, and a long series is thinned
evenly with the newest kept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from control_plane.experiments.looks import record_look
from control_plane.kit.time import utcnow
from control_plane.store.db import create_db_engine
from tests.test_experiments import EXPERIMENT, evaluate, traffic
from tests.test_experiments import client as client  # the seeded-app fixture


def start(client: TestClient) -> int:
    response = client.post("/v1/experiments", json=EXPERIMENT)
    assert response.status_code == 201, response.json()
    ident: int = response.json()["id"]
    return ident


def looks(client: TestClient, ident: int, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/v1/experiments/{ident}/looks", params=params)
    assert response.status_code == 200, response.json()
    found: list[dict[str, Any]] = response.json()
    return found


def test_a_look_is_stored_when_the_data_moved_and_shows_the_results_of_then(
    client: TestClient,
) -> None:
    ident = start(client)
    traffic(client, range(0, 200), {"v1": 5, "v2": 5})
    evaluate(client)
    evaluate(client)  # nothing new: no second look
    first = looks(client, ident)
    assert len(first) == 1
    results = client.get(f"/v1/experiments/{ident}/results").json()
    (look,) = first
    assert look["action"] == results["action"]
    assert look["observations"] == sum(row["n"] for row in results["metrics"])
    by_key = {(r["arm"], r["metric"]): r for r in look["rows"]}
    for row in results["metrics"]:
        kept = by_key[(row["arm"], row["metric"])]
        for key in ("n", "mean", "effect", "ci_low", "ci_high", "p_value", "reason"):
            assert kept[key] == row.get(key), key
    candidate = by_key[("v2", "converted")]
    assert candidate["ci_low"] is not None and candidate["ci_low"] <= candidate["effect"]

    traffic(client, range(200, 600), {"v1": 5, "v2": 5})
    evaluate(client)
    second = looks(client, ident)
    assert len(second) == 2
    assert second[1]["observations"] > second[0]["observations"]
    # with more data the interval of the same effect is narrower
    width = [
        next(r for r in look["rows"] if (r["arm"], r["metric"]) == ("v2", "converted"))
        for look in second
    ]
    assert width[1]["ci_high"] - width[1]["ci_low"] < width[0]["ci_high"] - width[0]["ci_low"]


def test_a_long_series_is_thinned_evenly_keeping_the_first_and_the_newest(
    client: TestClient, database_url: str
) -> None:
    ident = start(client)
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            now = utcnow()
            for i in range(1, 11):
                row = {"arm": "v2", "metric": "converted", "n": i, "effect": float("nan")}
                stored = record_look(
                    session, experiment_id=ident, at=now + timedelta(seconds=i), step=0,
                    action="continue", metrics=[row],
                )  # fmt: skip
                assert stored
            # the same observations at the same step: not news
            assert not record_look(
                session, experiment_id=ident, at=now, step=0, action="continue",
                metrics=[{"arm": "v2", "metric": "converted", "n": 10}],
            )  # fmt: skip
            session.commit()
    finally:
        db.dispose()
    every = looks(client, ident)
    assert [look["observations"] for look in every] == list(range(1, 11))
    assert every[0]["rows"][0]["effect"] is None  # NaN is stored as null, never refused
    assert [look["observations"] for look in looks(client, ident, limit=4)] == [1, 4, 7, 10]
    assert [look["observations"] for look in looks(client, ident, limit=1)] == [10]


def test_looks_of_an_unknown_experiment_or_a_bad_limit_are_4xx(client: TestClient) -> None:
    assert client.get("/v1/experiments/999999/looks").status_code == 404
    ident = start(client)
    for limit in ("0", "2001", "NaN", "1e308"):
        response = client.get(f"/v1/experiments/{ident}/looks", params={"limit": limit})
        assert response.status_code == 422, (limit, response.text)


def test_the_results_count_the_runs_behind_each_arm_s_users(client: TestClient) -> None:
    ident = start(client)
    traffic(client, range(0, 30), {"v1": 5, "v2": 5})
    traffic(client, range(0, 30), {"v1": 5, "v2": 5})  # the same users once more
    rows = client.get(f"/v1/experiments/{ident}/results").json()["metrics"]
    for row in rows:
        assert row["runs"] == 2 * row["n"], row  # n counts users, each ran twice
    evaluate(client)
    (look,) = looks(client, ident)
    assert [r["runs"] for r in look["rows"]] == [r["runs"] for r in rows]
