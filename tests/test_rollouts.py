"""Rollouts over HTTP, on SQLite and PostgreSQL: set, read, ramp, end, audit, errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, create_engine, select

from control_plane.api import create_app
from control_plane.rollouts import service
from control_plane.router import assign
from control_plane.settings import Settings
from control_plane.store.db import make_session_factory
from control_plane.store.models import AuditRow

V1 = """
name: greet
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
outputs:
  text: "${write.text}"
"""
V2 = V1.replace("writer-small", "writer-large")
V3 = V1.replace("writer-small", "writer-large").replace(
    "prompt.enhance", "prompt.enhance\n    retry: {max_attempts: 2}"
)


@pytest.fixture
def client(
    database_url: str, admin_key: str, admin_headers: dict[str, str]
) -> Iterator[TestClient]:
    settings = Settings(env="test", database_url=database_url, admin_key=admin_key)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, headers=admin_headers) as client:
        for version, source in (("v1", V1), ("v2", V2), ("v3", V3)):
            assert (
                client.post(
                    "/v1/workflows", json={"source": source, "version": version}
                ).status_code
                == 201
            )
        assert (
            client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).status_code == 200
        )
        yield client


def test_set_ramp_and_end_a_rollout_keeping_the_salt(client: TestClient) -> None:
    empty = client.get("/v1/workflows/greet/rollouts/prod")
    assert empty.status_code == 200
    assert empty.json()["baseline"] == "v1"
    assert empty.json()["candidates"] == []
    assert empty.json()["salt"] is None

    ten = client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 10})
    assert ten.status_code == 200, ten.json()
    body = ten.json()
    assert body["candidates"] == [{"version": "v2", "percent": 10.0, "active": True}]
    assert body["updated_by"] == "bootstrap-admin"  # the key's name
    salt = body["salt"]
    assert salt and len(salt) == 32

    twenty = client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 20})
    assert twenty.json()["salt"] == salt  # never changes: ramping only adds users
    assert twenty.json()["candidates"][0]["percent"] == 20.0
    off = client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 0})
    assert off.json()["candidates"] == []
    assert off.json()["salt"] == salt
    assert client.get("/v1/workflows/greet/rollouts/prod").json() == off.json()


def test_every_change_is_audited(client: TestClient, database_url: str) -> None:
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 10})
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v3", "percent": 5})
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(AuditRow).where(AuditRow.action == "rollout.set").order_by(col(AuditRow.id))
            ).all()
    finally:
        engine.dispose()
    assert [(r.target, r.before, r.after) for r in rows] == [
        ("greet:prod", None, {"baseline": "v1", "candidates": [{"version": "v2", "share": 0.1}]}),
        (
            "greet:prod",
            {"baseline": "v1", "candidates": [{"version": "v2", "share": 0.1}]},
            {"baseline": "v1", "candidates": [{"version": "v3", "share": 0.05}]},
        ),
    ]


def test_allocation_follows_the_label_and_drops_promoted_or_archived_candidates(
    client: TestClient, database_url: str
) -> None:
    client.put("/v1/workflows/greet/rollouts/prod", json={"version": "v2", "percent": 50})
    engine = create_engine(database_url)
    factory = make_session_factory(engine)
    try:
        with factory() as session:
            allocation = service.allocation_for(session, workflow="greet", label="prod")
        assert allocation.baseline == "v1"
        assert [(a.version, a.share) for a in allocation.candidates] == [("v2", 0.5)]
        versions = {assign(allocation, f"u{i}").version for i in range(100)}
        assert versions == {"v1", "v2"}
        # Promoting the candidate ends its rollout: everyone gets v2 as the baseline.
        client.put("/v1/workflows/greet/labels/prod", json={"version": "v2"})
        with factory() as session:
            promoted = service.allocation_for(session, workflow="greet", label="prod")
        assert (promoted.baseline, promoted.candidates) == ("v2", ())
        status = client.get("/v1/workflows/greet/rollouts/prod").json()
        assert status["candidates"] == [{"version": "v2", "percent": 50.0, "active": False}]
    finally:
        engine.dispose()


def test_rollout_errors_are_precise_4xx(client: TestClient) -> None:
    put = client.put
    assert (
        put("/v1/workflows/nope/rollouts/prod", json={"version": "v2", "percent": 1}).status_code
        == 404
    )
    assert (
        put("/v1/workflows/greet/rollouts/beta", json={"version": "v2", "percent": 1}).status_code
        == 404
    )
    assert (
        put("/v1/workflows/greet/rollouts/prod", json={"version": "v9", "percent": 1}).status_code
        == 404
    )
    same = put("/v1/workflows/greet/rollouts/prod", json={"version": "v1", "percent": 10})
    assert same.status_code == 409
    assert "already the version" in same.json()["error"]["message"]
    for bad in ({"version": "v2", "percent": 101}, {"version": "v2", "percent": -1},
                {"version": "v2"}, {"version": "v2", "percent": 5, "extra": 1}):  # fmt: skip
        response = put("/v1/workflows/greet/rollouts/prod", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"
    assert client.post("/v1/workflows/greet/versions/v3/archive").status_code == 200
    archived = put("/v1/workflows/greet/rollouts/prod", json={"version": "v3", "percent": 10})
    assert archived.status_code == 409
    assert "archived" in archived.json()["error"]["message"]
    assert client.get("/v1/workflows/greet/rollouts/beta").status_code == 404
