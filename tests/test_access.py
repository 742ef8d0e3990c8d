"""API keys, roles and the audit log over HTTP, on SQLite and PostgreSQL: 401 without a valid
key (with ``WWW-Authenticate``), 403 without the role, keys stored hashed and usable at once,
revocation, and every change audited with its actor, readable through ``GET /v1/audit``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import inspect, text

from control_plane.settings import DEV_ADMIN_KEY, Settings
from control_plane.store.db import create_db_engine
from tests.fixtures import (
    GREET,
    GREET_LARGE,
    Response,
    app_client,
    bearer,
    new_key,
    open_client,
    seed_workflow,
)

OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}  # scrapers and probes carry no key


@pytest.fixture
def client(database_url: str, admin_key: str) -> Iterator[TestClient]:
    """A client that sends no key by default; requests pass the headers they mean to test."""
    with app_client(database_url, admin_key, authenticated=False) as client:
        yield client


@pytest.fixture
def seeded(client: TestClient, admin_headers: dict[str, str]) -> dict[str, dict[str, str]]:
    """A workflow with v1 and v2, prod on v1; headers for a runner and a viewer key."""
    versions = {"v1": GREET, "v2": GREET_LARGE}
    seed_workflow(client, "greet", versions, {"prod": "v1"}, headers=admin_headers)
    return {
        "admin": admin_headers,
        "runner": bearer(new_key(client, "ci-runner", "runner", headers=admin_headers)),
        "viewer": bearer(new_key(client, "dashboard", "viewer", headers=admin_headers)),
    }


def assert_401(response: Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_every_route_but_health_and_docs_needs_a_key(client: TestClient) -> None:
    checked = 0
    # Every route is in the OpenAPI document: walk it, with "x" for each path parameter.
    for template, operations in client.get("/openapi.json").json()["paths"].items():
        if template in OPEN_PATHS:
            continue
        path = re.sub(r"\{[^}]+\}", "x", template)
        for method in operations:
            assert_401(client.request(method, path))
            assert_401(client.request(method, path, headers=bearer("rg_00000000_wrong")))
            checked += 1
    assert checked >= 16
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_wrong_and_malformed_keys_get_401_before_the_body_is_read(
    client: TestClient, admin_key: str
) -> None:
    for headers in (
        bearer("nope"),
        bearer(admin_key[:-1]),
        {"Authorization": f"Basic {admin_key}"},
        {"X-API-Key": ""},
    ):
        assert_401(client.post("/v1/workflows", json={"bad": 1}, headers=headers))
    # Both headers are accepted; the bearer header wins when both are sent.
    assert client.get("/v1/workflows", headers={"X-API-Key": admin_key}).status_code == 200
    both = {**bearer("wrong"), "X-API-Key": admin_key}
    assert_401(client.get("/v1/workflows", headers=both))


def test_roles_admin_runner_viewer(client: TestClient, seeded: dict[str, dict[str, str]]) -> None:
    admin, runner, viewer = seeded["admin"], seeded["runner"], seeded["viewer"]
    run = {"workflow": "greet", "input": {"prompt": "hi"}, "user_id": "u1"}
    # A viewer reads, and may not apply, run or manage keys.
    for path in ("/v1/workflows", "/v1/workflows/greet/versions", "/v1/runs"):
        assert client.get(path, headers=viewer).status_code == 200, path
    assert client.get("/v1/workflows/greet/rollouts/prod", headers=viewer).status_code == 200
    denied = client.post("/v1/workflows", json={"source": GREET, "version": "v9"}, headers=viewer)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"
    assert "'dashboard'" in denied.json()["error"]["message"]
    assert client.post("/v1/run", json=run, headers=viewer).status_code == 403
    # A runner runs and reads runs; it may not move labels, set rollouts or read the audit log.
    ran = client.post("/v1/run", json=run, headers=runner)
    assert ran.status_code == 200, ran.json()
    run_id = ran.json()["run_id"]
    assert client.get(f"/v1/runs/{run_id}", headers=runner).status_code == 200
    assert client.get(f"/v1/runs/{run_id}", headers=viewer).status_code == 200
    promote = client.put("/v1/workflows/greet/labels/prod", json={"version": "v2"}, headers=runner)
    assert promote.status_code == 403
    rollout = {"version": "v2", "percent": 10}
    assert (
        client.put("/v1/workflows/greet/rollouts/prod", json=rollout, headers=runner).status_code
        == 403
    )
    for headers in (runner, viewer):
        assert client.get("/v1/keys", headers=headers).status_code == 403
        assert client.get("/v1/audit", headers=headers).status_code == 403
        assert client.delete("/v1/keys/ci-runner", headers=headers).status_code == 403
    # Nothing a refused request tried was stored; the admin can do all of it.
    assert client.get("/v1/workflows/greet/labels", headers=admin).json()[0]["version"] == "v1"
    assert client.post("/v1/run", json=run, headers=admin).status_code == 200
    assert client.put("/v1/workflows/greet/rollouts/prod", json=rollout, headers=admin).is_success


def test_keys_are_stored_hashed_and_work_at_once(
    client: TestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    created = client.post("/v1/keys", json={"name": "ops", "role": "admin"}, headers=admin_headers)
    body = created.json()
    key = body["key"]
    assert re.fullmatch(r"rg_[0-9a-f]{8}_[A-Za-z0-9_\-]{43}", key)
    assert key.startswith(f"rg_{body['key_prefix']}_")
    assert (body["name"], body["role"], body["active"], body["created_by"]) == (
        "ops",
        "admin",
        True,
        "bootstrap-admin",
    )
    # The new admin key works immediately, and is the actor of what it does.
    made = client.post("/v1/keys", json={"name": "viewer-1", "role": "viewer"}, headers=bearer(key))
    assert made.status_code == 201
    assert made.json()["created_by"] == "ops"
    listed = client.get("/v1/keys", headers=bearer(key)).json()
    assert [k["name"] for k in listed] == ["ops", "viewer-1"]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    # Only the SHA-256 is stored: neither the key nor its secret part is anywhere in the store.
    secret = key.split("_", 2)[2]
    store = create_db_engine(database_url)
    try:
        with store.connect() as connection:
            dump = repr(
                [
                    connection.execute(text(f'SELECT * FROM "{table}"')).all()
                    for table in inspect(connection).get_table_names()
                ]
            )
            stored_hash = connection.execute(
                text("SELECT key_hash FROM api_key WHERE name = 'ops'")
            ).scalar()
    finally:
        store.dispose()
    assert key not in dump and secret not in dump
    assert stored_hash == hashlib.sha256(key.encode()).hexdigest()


def test_key_names_and_revocation(client: TestClient, admin_headers: dict[str, str]) -> None:
    key = new_key(client, "temp", "viewer", headers=admin_headers)
    assert client.get("/v1/workflows", headers=bearer(key)).status_code == 200
    for name in ("temp", "bootstrap-admin"):
        clash = client.post(
            "/v1/keys", json={"name": name, "role": "viewer"}, headers=admin_headers
        )
        assert clash.status_code == 409, name
    bad = client.post("/v1/keys", json={"name": "x y", "role": "root"}, headers=admin_headers)
    assert bad.status_code == 422
    revoked = client.delete("/v1/keys/temp", headers=admin_headers)
    assert revoked.status_code == 200
    assert (revoked.json()["active"], revoked.json()["revoked_at"] is not None) == (False, True)
    refused = client.get("/v1/workflows", headers=bearer(key))
    assert_401(refused)
    assert "revoked" in refused.json()["error"]["message"]
    again = client.delete("/v1/keys/temp", headers=admin_headers)
    assert again.json() == revoked.json()  # revoking twice changes nothing
    assert client.delete("/v1/keys/nobody", headers=admin_headers).status_code == 404
    assert client.delete("/v1/keys/bootstrap-admin", headers=admin_headers).status_code == 409
    # The name stays taken, so the audit log's actor names one key.
    reuse = client.post("/v1/keys", json={"name": "temp", "role": "viewer"}, headers=admin_headers)
    assert reuse.status_code == 409


def test_changes_are_audited_with_actor_before_and_after(
    client: TestClient, seeded: dict[str, dict[str, str]]
) -> None:
    admin = seeded["admin"]
    ops = bearer(new_key(client, "ops", "admin", headers=admin))
    start = client.get("/v1/audit", headers=admin, params={"limit": 1}).json()[0]["at"]
    client.put("/v1/workflows/greet/labels/prod", json={"version": "v2"}, headers=ops)
    client.put(
        "/v1/workflows/greet/rollouts/prod", json={"version": "v1", "percent": 10}, headers=ops
    )
    client.post("/v1/workflows/greet/labels/prod/rollback", headers=admin)
    client.delete("/v1/keys/dashboard", headers=ops)

    def audit(**params: Any) -> list[dict[str, Any]]:
        response = client.get("/v1/audit", headers=admin, params=params)
        assert response.status_code == 200, response.json()
        entries: list[dict[str, Any]] = response.json()
        return entries

    everything = audit()
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert [(e["actor"], e["action"]) for e in everything[:4]] == [
        ("ops", "key.revoke"),
        ("bootstrap-admin", "label.rollback"),
        ("ops", "rollout.set"),
        ("ops", "label.promote"),
    ]
    label = audit(target_kind="label", target="greet:prod")
    assert [(e["action"], e["before"], e["after"]) for e in label] == [
        ("label.rollback", {"version": "v2"}, {"version": "v1"}),
        ("label.promote", {"version": "v1"}, {"version": "v2"}),
        ("label.promote", None, {"version": "v1"}),
    ]
    by_ops = audit(actor="ops")
    assert {e["target_kind"] for e in by_ops} == {"label", "rollout", "api_key"}
    revoke = audit(target_kind="api_key", target="dashboard", limit=1)[0]
    assert revoke["before"]["revoked_at"] is None and revoke["after"]["revoked_at"]
    assert "key_hash" not in revoke["after"]
    created = audit(target_kind="api_key", target="ops")
    assert [(e["action"], e["actor"]) for e in created] == [("key.create", "bootstrap-admin")]
    versions = audit(target_kind="version")
    assert {(e["target"], e["actor"]) for e in versions} == {
        ("greet@v1", "bootstrap-admin"),
        ("greet@v2", "bootstrap-admin"),
    }
    assert len(audit(since=start)) == 5  # the ops key's creation and the four changes after
    assert audit(since="2999-01-01T00:00:00+02:00") == []
    assert len(audit(limit=2)) == 2
    assert client.get("/v1/audit", headers=admin, params={"limit": 0}).status_code == 422


def test_openapi_documents_401_and_403(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if path in OPEN_PATHS:
            continue
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)
            assert "security" in operation, (method, path)
            # A dry run writes nothing: a POST only for its body, open to any key.
            reads = method == "get" or path == "/v1/workflows/validate"
            needs_more_than_viewer = not reads or path in ("/v1/keys", "/v1/audit")
            assert ("403" in operation["responses"]) == needs_more_than_viewer, (method, path)


def test_the_dev_placeholder_is_an_admin_in_dev_and_refused_elsewhere(database_url: str) -> None:
    with pytest.raises(ValidationError, match="ROLLGRAPH_ADMIN_KEY"):
        Settings(env="prod", database_url=database_url, admin_key=DEV_ADMIN_KEY)
    dev = Settings(env="dev", database_url=database_url)
    with open_client(dev, run_engine=None) as client:
        assert client.get("/v1/keys", headers=bearer(DEV_ADMIN_KEY)).status_code == 200


def test_a_busy_sqlite_store_is_a_503_to_retry_not_a_500() -> None:
    import asyncio
    import sqlite3

    from sqlalchemy.exc import OperationalError
    from starlette.requests import Request

    from control_plane.api.errors import _unexpected

    locked = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    request = Request({"type": "http", "method": "POST", "path": "/v1/run", "headers": []})
    response = asyncio.run(_unexpected(request, locked))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert b"store_busy" in response.body
