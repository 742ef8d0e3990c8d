"""Assignment preview on SQLite and PostgreSQL: `GET .../labels/{label}/assignment` answers the
version a run by the same user gets, with the figures behind it, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from control_plane.rollouts.assignment import BUCKETS, arm_bucket_of, bucket_of
from control_plane.store.db import create_db_engine
from control_plane.store.tables import AuditRow, RunRow
from tests.fixtures import GREET, GREET_LARGE, seed_workflow

V1 = GREET
V2 = GREET_LARGE
V3 = V1.replace("prompt.enhance", "llm.generate")
USERS = [f"user-{i}" for i in range(60)] + ["", "ünïcødé-🙂", "x" * 200]


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": V1, "v2": V2, "v3": V3}, {"prod": "v1"})
    return api


def preview(client: TestClient, user: str, label: str = "prod") -> dict[str, Any]:
    response = client.get(
        f"/v1/workflows/greet/labels/{label}/assignment", params={"user_id": user}
    )
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def served(client: TestClient, user: str) -> dict[str, Any]:
    response = client.post(
        "/v1/run", json={"workflow": "greet", "input": {"prompt": "hi"}, "user_id": user}
    )
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def counts(database_url: str) -> tuple[int, int]:
    db = create_db_engine(database_url)
    try:
        with Session(db) as session:
            runs = session.exec(select(func.count()).select_from(RunRow)).one()
            audit = session.exec(select(func.count()).select_from(AuditRow)).one()
            return int(runs), int(audit)
    finally:
        db.dispose()


def test_no_rollout_every_user_gets_the_label(client: TestClient) -> None:
    body = preview(client, "someone")
    assert (body["version"], body["source"], body["assignment"]) == ("v1", "label", "baseline")
    assert body["rollout_buckets"] == 0 and body["arm_bucket"] is None
    assert body["arms"] == [{"version": "v1", "percent": 100.0, "role": "baseline"}]
    assert "nothing is rolled out" in body["explanation"]


def test_preview_matches_the_run_for_every_user_and_writes_nothing(
    client: TestClient, database_url: str
) -> None:
    rollout = client.put(
        "/v1/workflows/greet/rollouts/prod",
        json={"candidates": [{"version": "v2", "percent": 30}, {"version": "v3", "percent": 20}]},
    ).json()
    salt = rollout["salt"]
    before = counts(database_url)
    previews = {user: preview(client, user) for user in USERS}
    assert counts(database_url) == before  # no run, no audit entry
    seen = set()
    for user, body in previews.items():
        bucket = bucket_of(salt, user)
        assert body["bucket"] == bucket and body["rollout_buckets"] == 5_000
        assert body["source"] == "rollout"
        if bucket < 5_000:
            assert body["assignment"] == "candidate"
            assert body["arm_bucket"] == arm_bucket_of(salt, user)
            assert f"arm bucket {body['arm_bucket']} picks {body['version']}" in body["explanation"]
        else:
            assert (body["assignment"], body["version"], body["arm_bucket"]) == (
                "baseline",
                "v1",
                None,
            )
        seen.add(body["version"])
    assert seen == {"v1", "v2", "v3"}
    for user in USERS[:20]:  # the run takes the same decision, and records the same reason
        run = served(client, user)
        assert (run["version"], run["reason"]) == (
            previews[user]["version"],
            previews[user]["reason"],
        )
    shares = {a["version"]: a["percent"] for a in previews["user-0"]["arms"]}
    assert shares == {"v1": 50.0, "v2": 30.0, "v3": 20.0}
    assert BUCKETS == 10_000


def test_an_experiment_owns_the_label(client: TestClient) -> None:
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v3", "percent": 50})
    started = client.post(
        "/v1/experiments",
        json={
            "workflow": "greet",
            "candidates": [{"version": "v2", "percent": 50}],
            "primary": {
                "name": "converted",
                "kind": "proportion",
                "direction": "increase",
                "mde": 0.1,
            },
        },
    )
    assert started.status_code == 201, started.json()
    experiment = started.json()
    for user in USERS[:20]:
        body = preview(client, user)
        assert body["source"] == "experiment"
        assert body["experiment_id"] == experiment["id"]
        assert body["version"] in {"v1", "v2"}  # the experiment's arms, never the rollout's v3
        assert body["reason"].startswith(f"experiment {experiment['id']} bucket ")
        assert f"experiment {experiment['id']} (ramp step" in body["explanation"]
        assert served(client, user)["version"] == body["version"]


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/v1/workflows/nope/labels/prod/assignment", {"user_id": "u"}, 404, "nope"),
        ("/v1/workflows/greet/labels/staging/assignment", {"user_id": "u"}, 404, "staging"),
        ("/v1/workflows/greet/labels/prod/assignment", {}, 422, "user_id"),
        ("/v1/workflows/greet/labels/prod/assignment", {"user_id": "x" * 201}, 422, "user_id"),
        ("/v1/workflows/greet/labels/prod/assignment?user_id=a%00b", {}, 422, "user_id"),
        # A lone surrogate as the bytes an attacker can send (UTF-8 refuses to encode one).
        ("/v1/workflows/greet/labels/prod/assignment?user_id=%ED%A0%80", {}, 422, "user_id"),
    ],
)
def test_bad_requests_are_clear(
    client: TestClient, path: str, params: dict[str, str], status: int, says: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert says in response.text


def test_a_viewer_may_preview(client: TestClient) -> None:
    created = client.post("/v1/keys", json={"name": "watcher", "role": "viewer"})
    assert created.status_code == 201, created.json()
    key = created.json()["key"]
    response = client.get(
        "/v1/workflows/greet/labels/prod/assignment",
        params={"user_id": "u"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200, response.json()
    anonymous = client.get(
        "/v1/workflows/greet/labels/prod/assignment",
        params={"user_id": "u"},
        headers={"Authorization": ""},
    )
    assert anonymous.status_code == 401
