"""Starting, stopping and reading a label's shadow candidate on SQLite and PostgreSQL: one call
each, audited like promotions, admin only, and hostile input a 422 (never a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_plane.rollouts.shadowing import shadow_bucket_of
from tests.fixtures import GREET, GREET_LARGE, bearer, new_key, seed_workflow

V3 = GREET.replace("prompt.enhance", "llm.generate")
SHADOW = "/v1/workflows/greet/labels/prod/shadow"


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE, "v3": V3}, {"prod": "v1"})
    return api


def audit(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/audit", params={"target_kind": "shadow"})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


def test_start_read_stop_in_one_call_each_and_audited(client: TestClient) -> None:
    started = client.put(SHADOW, json={"version": "v2", "percent": 25, "max_cost_usd_per_hour": 3})
    assert started.status_code == 200, started.text
    body = started.json()
    assert (body["served"], body["version"], body["percent"], body["active"]) == (
        "v1", "v2", 25.0, True
    )  # fmt: skip
    assert body["max_cost_usd_per_hour"] == 3.0 and body["cost_usd_last_hour"] == 0.0
    salt = body["salt"]
    assert client.get(SHADOW).json()["version"] == "v2"

    stopped = client.delete(SHADOW)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["active"] is False and stopped.json()["stopped_at"] is not None
    assert client.delete(SHADOW).status_code == 404  # nothing running any more

    again = client.put(SHADOW, json={"version": "v3", "percent": 5, "max_cost_usd_per_hour": 1})
    assert again.json()["salt"] == salt  # the same users stay shadowed across a restart

    entries = audit(client)
    assert [e["action"] for e in entries] == ["shadow.start", "shadow.stop", "shadow.start"][::-1]
    newest = entries[0]
    assert newest["target"] == "greet:prod" and newest["actor"] == "bootstrap-admin"
    assert newest["before"]["active"] is False and newest["before"]["version"] == "v2"
    assert newest["after"] == {
        "served": "v1", "version": "v3", "percent": 5.0, "max_cost_usd_per_hour": 1.0,
        "active": True,
    }  # fmt: skip


def test_only_an_admin_starts_or_stops(client: TestClient) -> None:
    runner = bearer(new_key(client, "runner-1", "runner"))
    body = {"version": "v2", "percent": 10, "max_cost_usd_per_hour": 1}
    assert client.put(SHADOW, json=body, headers=runner).status_code == 403
    assert client.put(SHADOW, json=body).status_code == 200
    assert client.delete(SHADOW, headers=runner).status_code == 403
    assert client.get(SHADOW, headers=runner).status_code == 200


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"version": "v2", "percent": float("nan"), "max_cost_usd_per_hour": 1}, "percent"),
        ({"version": "v2", "percent": 1e308, "max_cost_usd_per_hour": 1}, "percent"),
        ({"version": "v2", "percent": 0, "max_cost_usd_per_hour": 1}, "percent"),
        ({"version": "v2", "percent": -5, "max_cost_usd_per_hour": 1}, "percent"),
        ({"version": "v2", "percent": 10, "max_cost_usd_per_hour": float("nan")}, "max_cost"),
        ({"version": "v2", "percent": 10, "max_cost_usd_per_hour": float("inf")}, "max_cost"),
        ({"version": "v2", "percent": 10, "max_cost_usd_per_hour": 1e308}, "max_cost"),
        ({"version": "v2", "percent": 10, "max_cost_usd_per_hour": -1}, "max_cost"),
        ({"version": "v2", "percent": 10, "max_cost_usd_per_hour": 0}, "max_cost"),
        ({"version": "v2", "percent": "ten", "max_cost_usd_per_hour": 1}, "percent"),
        ({"version": "", "percent": 10, "max_cost_usd_per_hour": 1}, "version"),
        ({"version": "a\x00b", "percent": 10, "max_cost_usd_per_hour": 1}, "version"),
        ({"version": "v9", "percent": 10, "max_cost_usd_per_hour": 1}, "v9"),
        ({"version": "v2", "percent": 10}, "max_cost"),
        ({"version": "v2", "percent": 10, "max_cost_usd_per_hour": 1, "x": 1}, "x"),
    ],
)
def test_hostile_input_is_a_clear_422(client: TestClient, body: dict[str, Any], says: str) -> None:
    # Sent as text: the JSON encoder would refuse NaN, which Python's JSON reader accepts.
    response = client.put(
        SHADOW, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert says in response.text
    assert audit(client) == []  # nothing was started


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/workflows/nope/labels/prod/shadow", {"version": "v2"}, 404),
        ("/v1/workflows/greet/labels/staging/shadow", {"version": "v2"}, 404),
        (SHADOW, {"version": "v1"}, 409),  # the label's own version
    ],
)
def test_unknown_targets_and_the_served_version(
    client: TestClient, path: str, body: dict[str, Any], status: int
) -> None:
    full = {**body, "percent": 10, "max_cost_usd_per_hour": 1}
    response = client.put(path, json=full)
    assert response.status_code == status, response.text


def test_an_archived_version_is_refused(client: TestClient) -> None:
    assert client.post("/v1/workflows/greet/versions/v3/archive").status_code == 200
    response = client.put(SHADOW, json={"version": "v3", "percent": 10, "max_cost_usd_per_hour": 1})
    assert response.status_code == 409 and "archived" in response.text
    assert client.get(SHADOW).status_code == 404


def test_the_assignment_preview_says_whether_a_user_is_mirrored(client: TestClient) -> None:
    users = [f"user-{i}" for i in range(40)]
    assert (
        client.get("/v1/workflows/greet/labels/prod/assignment", params={"user_id": "u"}).json()[
            "shadow"
        ]
        is None
    )
    salt = client.put(
        SHADOW, json={"version": "v2", "percent": 30, "max_cost_usd_per_hour": 1}
    ).json()["salt"]
    mirrored = set()
    for user in users:
        body = client.get(
            "/v1/workflows/greet/labels/prod/assignment", params={"user_id": user}
        ).json()
        shadow = body["shadow"]
        assert body["version"] == "v1"  # the shadow never serves
        assert (shadow["version"], shadow["shadow_buckets"]) == ("v2", 3_000)
        assert shadow["bucket"] == shadow_bucket_of(salt, user)
        assert shadow["mirrored"] == (shadow["bucket"] < 3_000)
        if shadow["mirrored"]:
            mirrored.add(user)
            assert "also run, after its answer, on the shadow v2" in body["explanation"]
    assert 0 < len(mirrored) < len(users)
