"""Ending an experiment by hand on SQLite and PostgreSQL: promote a candidate (the experiment
ends promoted and the label moves to it, both audited) or roll back (the candidates go to 0 %,
the label stays); neither on an ended experiment, nor a version that is not a candidate."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures import bearer, new_key
from tests.test_experiments import EXPERIMENT, run
from tests.test_experiments import client as client  # the seeded-app fixture


def start(client: TestClient) -> int:
    response = client.post("/v1/experiments", json=EXPERIMENT)
    assert response.status_code == 201, response.json()
    ident: int = response.json()["id"]
    return ident


def label(client: TestClient) -> str:
    labels = client.get("/v1/workflows/greet/labels").json()
    return str(next(x["version"] for x in labels if x["name"] == "prod"))


def audit_actions(client: TestClient) -> list[str]:
    return [e["action"] for e in client.get("/v1/audit", params={"limit": 5}).json()]


def test_promoting_by_hand_ends_it_and_moves_the_label(client: TestClient) -> None:
    ident = start(client)
    assert (
        client.post(f"/v1/experiments/{ident}/promote", json={"version": "v3"}).status_code == 409
    )
    done = client.post(f"/v1/experiments/{ident}/promote", json={"version": "v2"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "promoted" and "v2 promoted" in done.json()["outcome"]
    assert label(client) == "v2"
    assert {"experiment.promote", "label.promote"} <= set(audit_actions(client)), audit_actions(
        client
    )
    assert all(run(client, f"u{i}")["version"] == "v2" for i in range(10))
    again = client.post(f"/v1/experiments/{ident}/promote", json={"version": "v2"})
    assert again.status_code == 409


def test_rolling_back_by_hand_sends_the_traffic_back_and_keeps_the_label(
    client: TestClient,
) -> None:
    ident = start(client)
    done = client.post(f"/v1/experiments/{ident}/rollback")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "rolled_back"
    assert all(a["share"] == 0.0 for a in done.json()["arms"])
    assert label(client) == "v1"
    assert "experiment.rollback" in audit_actions(client)
    assert all(run(client, f"u{i}")["version"] == "v1" for i in range(10))
    assert client.post(f"/v1/experiments/{ident}/rollback").status_code == 409


def test_only_an_admin_ends_it_and_bad_bodies_are_422(client: TestClient) -> None:
    ident = start(client)
    viewer = bearer(new_key(client, "looker", "viewer"))
    assert client.post(f"/v1/experiments/{ident}/rollback", headers=viewer).status_code == 403
    for body in ({}, {"version": ""}, {"version": "v\x00"}, {"version": "v2", "x": 1}):
        answer = client.post(f"/v1/experiments/{ident}/promote", json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert client.post("/v1/experiments/999999/rollback").status_code == 404
