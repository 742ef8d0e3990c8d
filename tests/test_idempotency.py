"""``Idempotency-Key`` on ``POST /v1/run``, on SQLite and PostgreSQL: a key runs once and replays
its first response, refuses another body, is scoped per API key, is released by a request that
fails before its response, and holds under two concurrent requests."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from tests.fixtures import GREET, Response, app_state, apply, bearer, new_key, set_label

BODY: dict[str, Any] = {"workflow": "greet", "input": {"prompt": "a red sneaker"}}


@pytest.fixture
def client(api: TestClient) -> TestClient:
    apply(api, GREET)  # v1
    set_label(api, "greet", "prod", "v1")
    return api


def post(
    client: TestClient, key: str | None, body: dict[str, Any] = BODY, /, **headers: str
) -> Response:
    """``POST /v1/run`` with ``key`` (none: no header) and other ``headers`` (the body is
    positional only, so that no header can be taken for it)."""
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/v1/run", json=body, headers=headers)


def stored_runs(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/runs")
    assert response.status_code == 200
    runs: list[dict[str, Any]] = response.json()
    return runs


def runner_of(client: TestClient) -> engine.Engine:
    """The process's graph engine, which runs every workflow (tests patch its ``run``)."""
    runner: engine.Engine = app_state(client).compiler.engine
    return runner


def test_the_same_key_runs_once_and_replays_the_first_response(client: TestClient) -> None:
    first = post(client, "order-1")
    assert first.status_code == 200, first.json()
    assert "Idempotent-Replayed" not in first.headers
    again = post(client, "order-1")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    # The same request in another JSON spelling (key order, defaults written out) is the same.
    spelled = {"input": {"prompt": "a red sneaker"}, "workflow": "greet", "user_id": None}
    third = post(client, "order-1", spelled)
    assert (third.status_code, third.json()) == (200, first.json())
    assert [r["run_id"] for r in stored_runs(client)] == [first.json()["run_id"]]
    # Without a key, or with another one, every request runs.
    assert post(client, None).json()["run_id"] != first.json()["run_id"]
    assert post(client, "order-2").json()["run_id"] != first.json()["run_id"]
    assert len(stored_runs(client)) == 3


def test_the_same_key_with_another_body_is_a_422(client: TestClient) -> None:
    assert post(client, "k").status_code == 200
    other = post(client, "k", {**BODY, "user_id": "someone"})
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert "different request" in error["message"]
    assert len(stored_runs(client)) == 1


def test_keys_are_scoped_per_api_key(client: TestClient) -> None:
    worker = bearer(new_key(client, "worker", "runner"))
    mine = post(client, "shared")
    theirs = post(client, "shared", **worker)
    assert mine.status_code == theirs.status_code == 200
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["run_id"] != theirs.json()["run_id"]
    # Even another body: the other caller's key is not this caller's.
    other_body = post(client, "shared2", {**BODY, "user_id": "a"})
    assert post(client, "shared2", {**BODY, "user_id": "b"}, **worker).status_code == 200
    assert other_body.status_code == 200
    assert post(client, "shared", **worker).headers["Idempotent-Replayed"] == "true"
    assert len(stored_runs(client)) == 4


def test_a_request_that_fails_before_its_response_does_not_consume_the_key(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = post(client, "retry-me", {**BODY, "workflow": "nope"})
    assert unknown.status_code == 404
    bad_input = post(client, "retry-me", {**BODY, "input": {}})
    assert (bad_input.status_code, bad_input.json()["error"]["code"]) == (422, "invalid_input")

    async def broken(*args: Any, **kwargs: Any) -> engine.RunResult:
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr(runner_of(client), "run", broken)
        assert post(client, "retry-me").status_code == 500
    assert stored_runs(client) == []
    ok = post(client, "retry-me")
    assert ok.status_code == 200, ok.json()
    assert "Idempotent-Replayed" not in ok.headers
    assert [r["run_id"] for r in stored_runs(client)] == [ok.json()["run_id"]]


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tkey", " padded "])
def test_malformed_keys_are_a_422(client: TestClient, key: str) -> None:
    response = post(client, key)
    assert response.status_code == 422, response.json()
    assert stored_runs(client) == []


def test_keys_of_255_printable_characters_are_accepted(client: TestClient) -> None:
    key = ("a b~!" * 51)[:255]
    assert len(key) == 255
    assert post(client, key).status_code == 200
    assert post(client, key).headers["Idempotent-Replayed"] == "true"


def test_concurrent_requests_with_one_key_run_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = runner_of(client)
    original = runner.run
    calls = 0

    async def slow(*args: Any, **kwargs: Any) -> engine.RunResult:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.5)  # a slow node: the second request arrives while this runs
        return await original(*args, **kwargs)

    monkeypatch.setattr(runner, "run", slow)
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(lambda _: post(client, "concurrent"), range(2)))
    assert calls == 1
    runs = stored_runs(client)
    assert len(runs) == 1
    executed = [
        r for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r.headers
    ]
    assert len(executed) == 1
    assert executed[0].json()["run_id"] == runs[0]["run_id"]
    (other,) = [r for r in responses if r is not executed[0]]
    if other.status_code == 409:
        assert other.json()["error"]["code"] == "idempotency_in_progress"
        assert int(other.headers["Retry-After"]) >= 1
    else:
        assert other.status_code == 200
        assert other.headers["Idempotent-Replayed"] == "true"
        assert other.json() == executed[0].json()
    # Once the first has finished, a retry gets its response.
    retry = post(client, "concurrent")
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == executed[0].json()
    assert calls == 1


def test_the_header_and_its_errors_are_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/run"]["post"]
    (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header"
    assert header["schema"]["anyOf"][0]["maxLength"] == 255
    responses = operation["responses"]
    assert "Idempotent-Replayed" in responses["200"]["headers"]
    assert "Retry-After" in responses["409"]["headers"]
    assert "idempotency_key_reused" in responses["422"]["description"]
