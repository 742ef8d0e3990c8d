"""A real server, ``rollgraph serve --workers 2``, on SQLite and PostgreSQL: what a client is
told has happened has happened, whichever worker process the next request reaches.

* every run that got a response (sync, or async accepted) reads back at once;
* a promotion or a rollback is served by every worker within a short time, without a restart;
* two workers starting together migrate the schema once.

Each request opens a new connection, so the kernel spreads them over the workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

ECHO = """
name: echo
inputs:
  word: text
nodes:
  say:
    uses: template
    with: {text: "VERSION {w}", values: {w: "${inputs.word}"}}
outputs:
  text: "${say.text}"
"""


@pytest.fixture
def server(
    database_url: str, admin_key: str, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
    }
    with serve(env, workers=2) as url:
        yield url


def call(url: str, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    # A new connection per request (no keep-alive): any worker may answer.
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, f"{url}{path}", headers=headers, timeout=30, **kw)


def test_what_a_response_says_happened_is_visible_on_every_worker(
    server: str, admin_key: str
) -> None:
    for version in ("v1", "v2"):
        source = ECHO.replace("VERSION", version)
        applied = call(server, admin_key, "POST", "/v1/workflows", json={"source": source})
        assert applied.status_code == 201, applied.text
    assert call(server, admin_key, "PUT", "/v1/workflows/echo/labels/prod", json={"version": "v1"})

    body = {"workflow": "echo", "input": {"word": "hi"}}
    for i in range(30):
        mode = "async" if i % 3 == 0 else "sync"
        answered = call(server, admin_key, "POST", "/v1/run", json={**body, "mode": mode})
        assert answered.status_code in (200, 202), answered.text
        run_id = answered.json()["run_id"]
        read = call(server, admin_key, "GET", f"/v1/runs/{run_id}")
        assert read.status_code == 200, f"run {run_id} answered but not readable: {read.text}"
        if mode == "sync":
            assert read.json()["status"] == answered.json()["status"] == "succeeded"

    def converges_to(version: str) -> None:
        # Every worker serves `version`: 20 answers in a row on new connections, within 10 s.
        streak, deadline = 0, time.monotonic() + 10
        while streak < 20:
            assert time.monotonic() < deadline, f"workers did not all move to {version}"
            served = call(server, admin_key, "POST", "/v1/run", json=body).json()
            streak = streak + 1 if served["outputs"]["text"] == f"{version} hi" else 0

    moved = call(server, admin_key, "PUT", "/v1/workflows/echo/labels/prod", json={"version": "v2"})
    assert moved.status_code == 200
    converges_to("v2")
    rolled = call(server, admin_key, "POST", "/v1/workflows/echo/labels/prod/rollback")
    assert rolled.json()["version"] == "v1"
    converges_to("v1")
