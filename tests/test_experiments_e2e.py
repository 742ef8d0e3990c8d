"""An A/A experiment on a real server (``rollgraph serve``), on SQLite and PostgreSQL, driven by
users who run many times, one of them 200 times, with the background evaluator judging it every
second: it neither halts nor decides, and a hostile outcome is refused without harming it.

Conversion is a property of the user (each converts on every run or on none: the strongest
within-user correlation), and the heavy user converts on all 200 runs. Analysed by runs, as
before issue 12, those 200 runs alone read as a huge effect in the heavy user's arm and as a
sample ratio mismatch; analysed by users they are one unit. Alpha is 0.001, so the test's own
chance of a false decision is negligible while the old analysis fails it every time.
"""

from __future__ import annotations

import json
import time
import zlib
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
    with: {{text: "{version} {{w}}", values: {{w: "${{inputs.word}}"}}}}
outputs:
  text: "${{say.text}}"
"""

EXPERIMENT: dict[str, Any] = {
    "workflow": "echo",
    "label": "prod",
    "candidates": [{"version": "v2", "percent": 50}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "guardrails": [
        {"name": "rating", "kind": "mean", "direction": "increase", "margin": 0.5, "relative": True}
    ],
    "alpha": 0.001,
    "min_runs_per_arm": 10,
}


@pytest.fixture
def server(
    database_url: str, admin_key: str, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[httpx.Client]:
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "1",  # a look every second
    }
    with serve(env, workers=1) as url:
        headers = {"Authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            yield client


def _bucket(user: str) -> int:
    return zlib.crc32(user.encode()) % 10


def _users() -> list[tuple[str, int]]:
    """(user, runs): one heavy user first, then 200 who run 1 to 3 times."""
    return [("heavy", 200)] + [(f"user-{i}", 1 + i % 3) for i in range(200)]


def test_an_aa_experiment_with_repeat_users_neither_halts_nor_decides(
    server: httpx.Client,
) -> None:
    for version in ("v1", "v2"):
        source = ECHO.format(version=version)
        assert server.post("/v1/workflows", json={"source": source}).status_code in (200, 201)
    assert server.put("/v1/workflows/echo/labels/prod", json={"version": "v1"}).status_code == 200
    created = server.post("/v1/experiments", json=EXPERIMENT)
    assert created.status_code == 201, created.text
    experiment = created.json()["id"]

    run_ids = []
    for user, runs in _users():
        converts = user == "heavy" or _bucket(user) == 0
        for _ in range(runs):
            answered = server.post(
                "/v1/run",
                json={"workflow": "echo", "label": "prod", "input": {"word": "x"}, "user_id": user},
            )
            assert answered.status_code == 200, answered.text
            run_id = answered.json()["run_id"]
            run_ids.append(run_id)
            outcome = {"converted": converts, "rating": 3.0 + _bucket(user) % 3}
            recorded = server.post(f"/v1/runs/{run_id}/outcome", json=outcome)
            assert recorded.status_code == 200, recorded.text

    # A value the statistics cannot hold is refused, naming the metric; nothing is harmed.
    for run_id in run_ids[-2:]:
        hostile = server.post(f"/v1/runs/{run_id}/outcome", json={"rating2": 1e308})
        assert hostile.status_code == 422, hostile.text
        assert "rating2" in hostile.text
    time.sleep(2.5)  # at least two more looks by the background evaluator

    results = server.get(f"/v1/experiments/{experiment}/results")
    assert results.status_code == 200, results.text
    body = results.json()
    assert body["experiment"]["status"] == "running", body["reasons"]
    assert body["action"] == "continue", body["reasons"]
    assert body["srm"]["flagged"] is False
    # Users are the units: the heavy user is one of the 201.
    assert sum(body["srm"]["observed"].values()) == len(_users())
    decisions = server.get(f"/v1/experiments/{experiment}/decisions")
    assert decisions.status_code == 200, decisions.text
    acted = [d for d in decisions.json() if d["action"] in ("promote", "rollback", "halt")]
    assert acted == [], json.dumps(acted, indent=1)[:4000]
