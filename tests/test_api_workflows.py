"""The registry over HTTP, on SQLite and PostgreSQL: apply, versions, labels, diff, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures import Response, app_client, example

V32 = example("v3.2")
V33 = example("v3.3")


@pytest.fixture
def client(database_url: str, admin_key: str) -> Iterator[TestClient]:
    with app_client(database_url, admin_key, run_engine=None, max_body_bytes=64 * 1024) as client:
        yield client


def error_of(response: Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_apply_is_immutable_and_idempotent_by_content(client: TestClient) -> None:
    created = client.post("/v1/workflows", json={"source": V32})
    assert created.status_code == 201
    assert created.json()["version"] == "v3.2"
    assert created.json()["created"] is True
    again = client.post("/v1/workflows", json={"source": V32, "version": "v9"})
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert "v3.2" in again.json()["message"]
    clash = client.post("/v1/workflows", json={"source": V33, "version": "v3.2"})
    assert clash.status_code == 409
    assert error_of(clash)["code"] == "conflict"
    stored = client.get("/v1/workflows/product-video/versions/v3.2").json()
    assert stored["digest"] == created.json()["digest"]


def test_an_invalid_definition_gets_422_with_every_problem_and_stores_nothing(
    client: TestClient,
) -> None:
    broken = V32.replace('${enhance.text}", seconds', '${enhance.txt}", seconds').replace(
        "uses: audio.tts", "uses: audio.ttts"
    )
    response = client.post("/v1/workflows", json={"source": broken})
    assert response.status_code == 422
    error = error_of(response)
    codes = sorted(p["code"] for p in error["problems"] if p["severity"] == "error")
    assert codes == ["unknown_kind", "unknown_output"]
    assert all(p["line"] for p in error["problems"])
    assert client.get("/v1/workflows").json() == []
    syntax = client.post("/v1/workflows", json={"source": "name: [unclosed"})
    assert syntax.status_code == 422
    assert error_of(syntax)["problems"][0]["code"] == "syntax"


def test_versions_labels_promote_and_rollback(client: TestClient) -> None:
    client.post("/v1/workflows", json={"source": V32})
    client.post("/v1/workflows", json={"source": V33})
    versions = [v["version"] for v in client.get("/v1/workflows/product-video/versions").json()]
    assert versions == ["v3.2", "v3.3"]
    assert (
        client.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.2"}).json()[
            "version"
        ]
        == "v3.2"
    )
    moved = client.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.3"})
    assert moved.json()["version"] == "v3.3"
    back = client.post("/v1/workflows/product-video/labels/prod/rollback")
    assert back.status_code == 200
    assert back.json()["version"] == "v3.2"
    history = client.get("/v1/workflows/product-video/labels/prod/history").json()
    assert [(e["reason"], e["to_version"]) for e in history][:2] == [
        ("rollback", "v3.2"),
        ("promote", "v3.3"),
    ]
    workflows = client.get("/v1/workflows").json()
    assert workflows[0]["labels"] == {"prod": "v3.2"}


def test_archiving_a_labelled_version_is_refused(client: TestClient) -> None:
    client.post("/v1/workflows", json={"source": V32})
    client.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.2"})
    refused = client.post("/v1/workflows/product-video/versions/v3.2/archive")
    assert refused.status_code == 409
    assert "prod" in error_of(refused)["message"]


def test_diff_over_http(client: TestClient) -> None:
    client.post("/v1/workflows", json={"source": V32})
    client.post("/v1/workflows", json={"source": V33})
    diff = client.get("/v1/workflows/product-video/diff", params={"a": "v3.2", "b": "v3.3"})
    assert diff.status_code == 200
    body = diff.json()
    assert {"safety", "music"} <= set(body["nodes_added"])
    assert "+++" in body["text"]


def test_not_found_and_bad_requests_are_precise_4xx(client: TestClient) -> None:
    missing = client.get("/v1/workflows/nope/versions")
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    client.post("/v1/workflows", json={"source": V32})
    no_version = client.get("/v1/workflows/product-video/versions/v0")
    assert no_version.status_code == 404
    assert "v3.2" in error_of(no_version)["message"]
    assert client.post("/v1/workflows", json={"src": V32}).status_code == 422
    assert (
        client.post(
            "/v1/workflows", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert client.get("/v1/nowhere").status_code == 404
    assert client.post("/v1/workflows/product-video/labels/prod/rollback").status_code == 409


def test_request_bodies_over_the_limit_get_413(client: TestClient) -> None:
    huge = {"source": "x" * (70 * 1024)}
    response = client.post("/v1/workflows", json=huge)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_openapi_document_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/workflows" in paths
    assert "/v1/workflows/{name}/labels/{label}/rollback" in paths


def test_a_body_that_is_not_utf8_gets_422(client: TestClient) -> None:
    response = client.post(
        "/v1/workflows",
        content=b'{"source": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"
