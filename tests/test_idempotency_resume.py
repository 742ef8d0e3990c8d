"""``Idempotency-Key`` on ``POST /v1/runs/{id}/resume`` (issue 18), on SQLite and PostgreSQL: a
repeat answers the first resume without running the run again, the key with another request is
a 422, a resume refused before its answer frees the key, and the header is documented."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures import GREET, Response, apply, set_label

FETCH = """
name: fetch
nodes:
  api:
    uses: http.json
    with: {url: "https://not-allowed.example/items"}
outputs:
  body: "${api.body}"
"""


@pytest.fixture
def client(api: TestClient) -> TestClient:
    apply(api, FETCH)  # fails: the host is not allowed
    set_label(api, "fetch", "prod", "v1")
    apply(api, GREET)
    set_label(api, "greet", "prod", "v1")
    return api


def failed_run(client: TestClient) -> str:
    response = client.post("/v1/run", json={"workflow": "fetch"})
    assert response.status_code == 200 and response.json()["status"] == "failed"
    run_id: str = response.json()["run_id"]
    return run_id


def resume(client: TestClient, run_id: str, key: str | None, **body: Any) -> Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(f"/v1/runs/{run_id}/resume", json=body or None, headers=headers)


def test_a_repeated_key_answers_the_first_resume(client: TestClient) -> None:
    run_id = failed_run(client)
    first = resume(client, run_id, "resume-1")
    assert (first.status_code, first.json()["attempt"]) == (200, 2)
    assert "Idempotent-Replayed" not in first.headers
    again = resume(client, run_id, "resume-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert client.get(f"/v1/runs/{run_id}").json()["attempt"] == 2  # not run again
    # Without the key the failed run is resumed again.
    assert resume(client, run_id, None).json()["attempt"] == 3


def test_the_key_with_another_request_is_a_422(client: TestClient) -> None:
    run_id, other = failed_run(client), failed_run(client)
    assert resume(client, run_id, "k").status_code == 200
    for response in (resume(client, run_id, "k", mode="async"), resume(client, other, "k")):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    # A run and a resume never share a key's answer.
    ran = client.post("/v1/run", json={"workflow": "greet"}, headers={"Idempotency-Key": "k"})
    assert ran.status_code == 422


def test_an_async_resume_is_replayed_as_accepted(client: TestClient) -> None:
    run_id = failed_run(client)
    first = resume(client, run_id, "async-1", mode="async")
    assert first.status_code == 202 and first.headers["Location"] == f"/v1/runs/{run_id}"
    again = resume(client, run_id, "async-1", mode="async")
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["attempt"] == first.json()["attempt"] == 2


def test_a_refused_resume_frees_its_key(client: TestClient) -> None:
    ok = client.post("/v1/run", json={"workflow": "greet", "input": {"prompt": "x"}}).json()
    refused = resume(client, ok["run_id"], "free-1")
    assert refused.status_code == 409  # only a failed run can be resumed
    assert resume(client, "no-such-run", "free-2").status_code == 404
    # Neither stored an answer: the keys serve the next request.
    run_id = failed_run(client)
    assert resume(client, run_id, "free-2").json()["attempt"] == 2


def test_the_header_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/runs/{run_id}/resume"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
    assert "Idempotent-Replayed" in operation["responses"]["200"]["headers"]
