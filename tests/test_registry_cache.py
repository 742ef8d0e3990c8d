"""The per-process registry cache, on SQLite and PostgreSQL: a change is seen by this process's
next request, by another process within the poll interval; a read that raced a change is never
served; the poller survives store errors; unknown keys do not grow the cache; label rollouts."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from control_plane.access import service as access
from control_plane.errors import Conflict, NotFound
from control_plane.registry.cache import RegistryCache
from control_plane.rollouts.routing import Route
from control_plane.runs import planning
from control_plane.runs.schemas import RunRequest
from control_plane.store.db import make_session_factory, session_scope
from control_plane.store.generation import read_generation
from control_plane.workflows import labels
from tests.fixtures import GREET, GREET_LARGE, app_client, app_state, bearer, new_key, seed_workflow

V1 = GREET
V2 = GREET_LARGE
V3 = V1.replace("prompt.enhance", "prompt.enhance\n    retry: {max_attempts: 2}")
INPUT = {"prompt": "a red sneaker"}
POLL_S = 0.05
# So long that only the commit hook, never the poller, can tell the cache of a change.
NO_POLL_S = 3600.0
WAIT_S = 20.0  # generous: only a broken poller takes this long
REGISTRY_READ = re.compile(r"\bFROM (workflow|workflow_version|workflow_label|rollout|api_key)\b")


@contextmanager
def seeded_client(database_url: str, admin_key: str, *, poll_s: float) -> Iterator[TestClient]:
    """An app on the database with greet v1, v2, v3, prod on v1 and staging on v3."""
    with app_client(database_url, admin_key, registry_poll_s=poll_s) as client:
        seed_workflow(
            client, "greet", {"v1": V1, "v2": V2, "v3": V3}, {"prod": "v1", "staging": "v3"}
        )
        yield client


@pytest.fixture
def client(database_url: str, admin_key: str) -> Iterator[TestClient]:  # no polls after start
    with seeded_client(database_url, admin_key, poll_s=NO_POLL_S) as client:
        yield client


@pytest.fixture
def polled(database_url: str, admin_key: str) -> Iterator[TestClient]:  # polls every POLL_S
    with seeded_client(database_url, admin_key, poll_s=POLL_S) as client:
        yield client


def cache_of(client: TestClient) -> RegistryCache:
    return cast(RegistryCache, app_state(client).registry_cache)


def plan(client: TestClient, **body: Any) -> planning.RunPlan:
    """The cached planning path, in the app's own event loop."""
    request = RunRequest(workflow="greet", input=INPUT, **body)
    call = functools.partial(planning.plan, cache_of(client), request=request)
    return cast(planning.RunPlan, client.portal.call(call))  # type: ignore[union-attr]


def run(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/run", json={"workflow": "greet", "input": INPUT, **body})
    assert response.status_code == 200, response.json()
    return dict(response.json())


def eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "not seen within the wait"
        time.sleep(POLL_S / 2)


@contextmanager
def statements(db_engine: Engine) -> Iterator[list[str]]:
    """The registry reads run on ``db_engine`` meanwhile."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if REGISTRY_READ.search(statement):
            seen.append(statement)

    event.listen(db_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db_engine, "before_cursor_execute", before)


def test_a_warm_cache_plans_and_authenticates_without_the_store(client: TestClient) -> None:
    db_engine: Engine = app_state(client).db_engine
    key = new_key(client, "ci", "runner")
    with statements(db_engine) as cold:
        assert plan(client, user_id="u1").version == "v1"
        assert client.get("/v1/workflows", headers=bearer(key)).status_code == 200
    assert any("FROM api_key" in s for s in cold) and any("FROM workflow_label" in s for s in cold)
    with statements(db_engine) as warm:
        assert plan(client, user_id="u2").version == "v1"
        assert plan(client, version="v2").version == "v2"  # a pin: cold once ...
        assert client.get("/v1/workflows", headers=bearer(key)).status_code == 200
    with statements(db_engine) as hot:
        assert plan(client, user_id="u3").version == "v1"
        assert plan(client, version="v2").version == "v2"  # ... then warm
    assert warm and not [s for s in warm if "FROM api_key" in s]
    assert hot == []


def test_changes_through_the_api_are_seen_by_the_next_request(client: TestClient) -> None:
    def put(path: str, body: dict[str, Any]) -> None:
        assert client.put(f"/v1/workflows/greet/{path}", json=body).status_code == 200

    assert plan(client, user_id="u1").version == "v1"  # warm
    put("labels/prod", {"version": "v2"})
    assert plan(client, user_id="u1").version == "v2"
    assert client.post("/v1/workflows/greet/labels/prod/rollback").status_code == 200
    assert plan(client, user_id="u1").version == "v1"
    put("rollouts/prod", {"version": "v2", "percent": 100})
    routed = plan(client, user_id="u1")
    assert (routed.version, routed.reason.startswith("rollout bucket ")) == ("v2", True)
    assert run(client, user_id="u1")["version"] == "v2"
    put("rollouts/prod", {"version": "v2", "percent": 0})
    assert plan(client, user_id="u1").reason == "label"
    # A pinned version, then archived: 409 at once.
    assert plan(client, version="v2").version == "v2"
    assert client.post("/v1/workflows/greet/versions/v2/archive").status_code == 200
    with pytest.raises(Conflict, match="archived"):
        plan(client, version="v2")
    # A key that worked (and is cached) is refused from the next request on.
    key = new_key(client, "temp", "runner")
    assert client.get("/v1/workflows", headers=bearer(key)).status_code == 200
    assert client.delete("/v1/keys/temp").status_code == 200
    refused = client.get("/v1/workflows", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["message"] == "the API key 'temp' was revoked"


def test_changes_by_another_process_are_seen_within_the_poll_interval(
    polled: TestClient, database_url: str, admin_key: str
) -> None:
    client = polled
    key = new_key(client, "shared", "runner")
    assert plan(client, user_id="u1").version == "v1"  # warm
    assert client.get("/v1/workflows", headers=bearer(key)).status_code == 200
    with app_client(database_url, admin_key, registry_poll_s=POLL_S) as other:
        assert other.put("/v1/workflows/greet/labels/prod", json={"version": "v2"}).is_success
        eventually(lambda: plan(client, user_id="u1").version == "v2")
        assert other.delete("/v1/keys/shared").is_success
        eventually(lambda: client.get("/v1/workflows", headers=bearer(key)).status_code == 401)
    # A plain session in "another process": the audit writer alone tells the cache.
    factory = make_session_factory(app_state(client).db_engine)
    with session_scope(factory) as session:
        labels.set_label(session, workflow="greet", label="prod", version="v3", actor="t")
    eventually(lambda: plan(client, user_id="u1").version == "v3")


def test_a_read_that_raced_a_change_is_not_served(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = cache_of(client)
    factory = app_state(client).session_factory
    read_route = planning.read_route

    def racing(session: Session, **kwargs: Any) -> Route:
        route = read_route(session, **kwargs)  # prod → v1, read at the current generation
        with session_scope(factory) as other:  # ... and prod moves before it is stored
            labels.set_label(other, workflow="greet", label="prod", version="v2", actor="t")
        return route

    monkeypatch.setattr(planning, "read_route", racing)
    assert plan(client, user_id="u1").version == "v1"  # began before the move: fine
    monkeypatch.setattr(planning, "read_route", read_route)
    assert plan(client, user_id="u1").version == "v2"  # the racing read was not kept
    # The rule itself: an entry read at an older generation is dropped, never made valid.
    old = cache.generation
    cache.observe(old + 1)
    cache.put("k", "stale", generation=old)
    assert cache.get("k", str) is None
    assert cache.generation == old + 1  # and the generation never goes back


def test_the_poller_survives_store_errors(
    polled: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = polled
    cache = cache_of(client)
    real_read, failed, down = cache._poll_read, [], True

    def flaky() -> int:
        if down:
            failed.append(1)
            raise OperationalError("SELECT generation", {}, Exception("store down"))
        return real_read()

    assert plan(client, user_id="u1").version == "v1"  # warm
    with caplog.at_level(logging.WARNING, logger="control_plane.registry.cache"):
        monkeypatch.setattr(cache, "_poll_read", flaky)
        eventually(lambda: len(failed) >= 3)
        factory = make_session_factory(app_state(client).db_engine)
        with session_scope(factory) as session:  # a change the poller cannot see yet
            labels.set_label(session, workflow="greet", label="prod", version="v2", actor="t")
        down = False
        eventually(lambda: plan(client, user_id="u1").version == "v2")
    assert cache.polling
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot read the registry generation" in m for m in messages) == 1
    assert any("works again" in m for m in messages)


def test_unknown_keys_do_not_grow_the_cache_and_it_stays_bounded(
    database_url: str, admin_key: str
) -> None:
    # 200 unknown keys from one address: past the failed-lookup limit unless it is raised.
    with app_client(database_url, admin_key, key_failures_per_s=1e9) as client:
        _unknown_keys_and_a_bounded_cache(client)


def _unknown_keys_and_a_bounded_cache(client: TestClient) -> None:
    cache = cache_of(client)
    before = len(cache)
    for i in range(200):
        response = client.get("/v1/workflows", headers=bearer(f"rg_{i:08x}_{'x' * 43}"))
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "unknown API key"
    assert len(cache) == before
    cache.capacity = 3
    keys = [new_key(client, f"k{i}", "runner") for i in range(6)]
    for key in keys * 2:  # every key works, evicted or not
        assert client.get("/v1/workflows", headers=bearer(key)).status_code == 200
        assert len(cache) <= 3
    assert len(cache) == 3


def test_a_given_labels_rollout_applies_and_a_version_pin_wins(client: TestClient) -> None:
    rollout = {"version": "v2", "percent": 100}
    assert client.put("/v1/workflows/greet/rollouts/staging", json=rollout).is_success
    routed = plan(client, label="staging", user_id="u1")
    assert (routed.version, routed.label) == ("v2", "staging")
    assert routed.reason.startswith("rollout bucket ")
    ran = run(client, label="staging", user_id="u1")  # over HTTP alike
    assert (ran["version"], ran["reason"], ran["label"]) == ("v2", routed.reason, "staging")
    # prod has no rollout; a pin ignores every label and rollout.
    assert plan(client, label="prod", user_id="u1").reason == "label"
    pinned = plan(client, label="staging", version="v1", user_id="u1")
    assert (pinned.version, pinned.reason, pinned.label) == ("v1", "pin", None)
    with pytest.raises(NotFound, match="no label 'beta'"):
        plan(client, label="beta")


def test_the_generation_counts_committed_changes_only(client: TestClient) -> None:
    factory = app_state(client).session_factory
    cache = cache_of(client)
    with session_scope(factory) as session:
        start = read_generation(session)
    assert cache.generation == start  # the app's own changes advanced it already
    with factory() as session:  # a change rolled back: no increment, the cache unchanged
        labels.set_label(session, workflow="greet", label="prod", version="v2", actor="t")
        session.rollback()
    with session_scope(factory) as session:
        assert read_generation(session) == start
        labels.set_label(session, workflow="greet", label="prod", version="v2", actor="t")
        access.create_key(session, name="two-in-one", role="viewer", actor="t")
    assert cache.generation == start + 2  # seen at commit, before any poll
