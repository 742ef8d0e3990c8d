"""Rollouts over HTTP, on SQLite and PostgreSQL: set, read, ramp, end, audit, errors, several
candidates (split, validation, ending, the CLI)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, create_engine, select

from control_plane.rollouts import service
from control_plane.rollouts.assignment import assign
from control_plane.store.db import make_session_factory
from control_plane.store.tables import AuditRow
from tests.fixtures import GREET, GREET_LARGE, Response, seed_workflow

V1 = GREET
V2 = GREET_LARGE
V3 = V1.replace("writer-small", "writer-large").replace(
    "prompt.enhance", "prompt.enhance\n    retry: {max_attempts: 2}"
)


@pytest.fixture
def client(api: TestClient) -> TestClient:
    seed_workflow(api, "greet", {"v1": V1, "v2": V2, "v3": V3}, {"prod": "v1"})
    return api


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


V4 = V1.replace('prompt: "${inputs.prompt}"', 'prompt: "Sell: ${inputs.prompt}"')
PUT = "/v1/workflows/greet/rollouts/prod"


def two_candidates(client: TestClient) -> dict[str, Any]:
    """prod: v1 baseline, v2 at 20 %, v4 at 30 %."""
    assert client.post("/v1/workflows", json={"source": V4, "version": "v4"}).status_code == 201
    response = client.put(
        PUT,
        json={"candidates": [{"version": "v2", "percent": 20}, {"version": "v4", "percent": 30}]},
    )
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def test_two_candidates_split_the_label_s_traffic(client: TestClient, database_url: str) -> None:
    body = two_candidates(client)
    assert body["baseline"] == "v1"
    assert body["candidates"] == [
        {"version": "v2", "percent": 20.0, "active": True},
        {"version": "v4", "percent": 30.0, "active": True},
    ]
    assert client.get(PUT).json() == body
    engine_ = create_engine(database_url)
    try:
        with make_session_factory(engine_)() as session:
            allocation = service.allocation_for(session, workflow="greet", label="prod")
    finally:
        engine_.dispose()
    assert allocation.salt == body["salt"]
    assert [(a.version, a.share) for a in allocation.candidates] == [("v2", 0.2), ("v4", 0.3)]
    n = 20_000
    counts = Counter(assign(allocation, f"user-{i}").version for i in range(n))
    # Expected 50/20/30 %; one standard deviation is at most 0.36 %, so 1.5 % is > 4 sd.
    for version, share in (("v1", 0.5), ("v2", 0.2), ("v4", 0.3)):
        assert abs(counts[version] / n - share) < 0.015, counts
    # POST /v1/run routes by the same allocation: every version serves, each user as assigned.
    for i in range(60):
        user = f"user-{i}"
        run = client.post(
            "/v1/run", json={"workflow": "greet", "input": {"prompt": "hi"}, "user_id": user}
        )
        assert run.status_code == 200, run.json()
        assert run.json()["version"] == assign(allocation, user).version, user
    assert {assign(allocation, f"user-{i}").version for i in range(60)} == {"v1", "v2", "v4"}


def test_several_candidates_keep_the_salt_are_audited_and_end_with_an_empty_list(
    client: TestClient, database_url: str
) -> None:
    first = client.put(PUT, json={"version": "v2", "percent": 10}).json()
    body = two_candidates(client)
    assert body["salt"] == first["salt"]
    # Candidates at 0 % are dropped; the order given is kept.
    dropped = client.put(
        PUT,
        json={"candidates": [{"version": "v4", "percent": 5}, {"version": "v2", "percent": 0}]},
    ).json()
    assert dropped["candidates"] == [{"version": "v4", "percent": 5.0, "active": True}]
    ended = client.put(PUT, json={"candidates": []})
    assert ended.status_code == 200, ended.json()
    assert ended.json()["candidates"] == []
    assert ended.json()["salt"] == first["salt"]
    assert client.get(PUT).json() == ended.json()
    engine_ = create_engine(database_url)
    try:
        with Session(engine_) as session:
            rows = session.exec(
                select(AuditRow).where(AuditRow.action == "rollout.set").order_by(col(AuditRow.id))
            ).all()
            with make_session_factory(engine_)() as s:
                after_end = service.allocation_for(s, workflow="greet", label="prod")
    finally:
        engine_.dispose()
    assert (after_end.baseline, after_end.candidates) == ("v1", ())
    one = [{"version": "v2", "share": 0.1}]
    two = [{"version": "v2", "share": 0.2}, {"version": "v4", "share": 0.3}]
    v4 = [{"version": "v4", "share": 0.05}]
    assert [(r.actor, r.target, r.before, r.after) for r in rows] == [
        ("bootstrap-admin", "greet:prod", None, {"baseline": "v1", "candidates": one}),
        (
            "bootstrap-admin",
            "greet:prod",
            {"baseline": "v1", "candidates": one},
            {"baseline": "v1", "candidates": two},
        ),
        (
            "bootstrap-admin",
            "greet:prod",
            {"baseline": "v1", "candidates": two},
            {"baseline": "v1", "candidates": v4},
        ),
        (
            "bootstrap-admin",
            "greet:prod",
            {"baseline": "v1", "candidates": v4},
            {"baseline": "v1", "candidates": []},
        ),
    ]


def test_the_shorthand_replaces_every_candidate(client: TestClient) -> None:
    two_candidates(client)
    body = client.put(PUT, json={"version": "v4", "percent": 12.5}).json()
    assert body["candidates"] == [{"version": "v4", "percent": 12.5, "active": True}]
    assert client.put(PUT, json={"version": "v4", "percent": 0}).json()["candidates"] == []


def _messages(response: Response) -> str:
    assert response.json()["error"]["code"] == "invalid_request", response.json()
    return " | ".join(f["message"] for f in response.json()["error"]["fields"])


def test_candidate_lists_are_validated_with_messages_that_say_what_to_fix(
    client: TestClient,
) -> None:
    def cands(*pairs: tuple[str, object]) -> dict[str, Any]:  # invalid percents on purpose
        return {"candidates": [{"version": v, "percent": p} for v, p in pairs]}

    both = client.put(PUT, json={"version": "v2", "percent": 5, **cands(("v3", 5))})
    assert both.status_code == 422
    assert "not both" in _messages(both)
    for neither in ({}, {"percent": 5}):
        response = client.put(PUT, json=neither)
        assert response.status_code == 422, neither
        assert "`candidates`" in _messages(response)
    duplicate = client.put(PUT, json=cands(("v2", 5), ("v3", 5), ("v2", 1)))
    assert duplicate.status_code == 422
    assert "'v2' is listed more than once" in _messages(duplicate)
    too_much = client.put(PUT, json=cands(("v2", 60), ("v3", 50)))
    assert too_much.status_code == 422
    message = _messages(too_much)
    assert "sum to 110" in message and "v2 60 + v3 50" in message and "at most 100" in message
    assert client.put(PUT, json=cands(("v2", 33.3), ("v3", 66.7))).status_code == 200
    for bad in (
        cands(("v2", 101)),
        cands(("v2", -1)),
        cands(("v2", 5), ("v3", "lots")),
        {"candidates": [{"version": "v2"}]},
        {"candidates": [{"version": "", "percent": 5}]},
        {"candidates": [{"version": "v2", "percent": 5, "extra": 1}]},
        {"candidates": {"v2": 5}},
        cands(*((f"x{i}", 1) for i in range(21))),
    ):
        response = client.put(PUT, json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"
    unknown = client.put(PUT, json=cands(("v2", 5), ("v9", 5)))
    assert unknown.status_code == 404
    assert "no version 'v9'" in unknown.json()["error"]["message"]
    baseline = client.put(PUT, json=cands(("v2", 5), ("v1", 5)))
    assert baseline.status_code == 409
    assert "already the version of label 'prod'" in baseline.json()["error"]["message"]
    assert client.post("/v1/workflows/greet/versions/v3/archive").status_code == 200
    archived = client.put(PUT, json=cands(("v2", 5), ("v3", 5)))
    assert archived.status_code == 409
    assert "v3 is archived" in archived.json()["error"]["message"]
    # Nothing was stored by a rejected request: the last good list stands.
    assert [c["version"] for c in client.get(PUT).json()["candidates"]] == ["v2", "v3"]
    # An archived or baseline version at 0 % is dropped, as the shorthand at 0 always was.
    zeroed = client.put(PUT, json=cands(("v2", 5), ("v3", 0), ("v1", 0)))
    assert zeroed.status_code == 200, zeroed.json()
    assert zeroed.json()["candidates"] == [{"version": "v2", "percent": 5.0, "active": True}]


def test_the_service_rejects_bad_lists_given_directly(
    client: TestClient, database_url: str
) -> None:
    engine_ = create_engine(database_url)
    try:
        with make_session_factory(engine_)() as session:
            for bad, match in (
                ([("v2", 60.0), ("v3", 41.0)], "sum to 101"),
                ([("v2", 1.0), ("v2", 2.0)], "more than once"),
                ([("v2", 100.5)], "between 0 and 100"),
            ):
                with pytest.raises(ValueError, match=match):
                    service.set_rollout(
                        session, workflow="greet", label="prod", candidates=bad, actor="t"
                    )
    finally:
        engine_.dispose()
