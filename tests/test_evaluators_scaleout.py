"""Online evaluators with real processes: a server and two ``rollgraph worker`` processes on
PostgreSQL and Redis. The worker that ran a run is killed with SIGKILL as soon as the run is
stored, before (or while) its evaluators score it; the other worker's sweep takes the run's
due mark over and its scores land exactly once."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text

from control_plane.store.db import create_db_engine
from tests.fixtures import REDIS_URL, bearer
from tests.test_evaluators_runs import EVALUATORS

pytestmark = pytest.mark.slow

GREET = """
name: greet
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-large, prompt: "${inputs.prompt}"}
outputs:
  text: "${write.text}"
"""


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_scores_of_a_run_whose_worker_was_killed_land_once(
    database_url: str,
    admin_key: str,
    redis_prefix: str,
    serve: Callable[..., AbstractContextManager[str]],
    worker: Callable[..., AbstractContextManager[Any]],
) -> None:
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "ROLLGRAPH_REDIS_PREFIX": redis_prefix,
        "ROLLGRAPH_QUEUE_VISIBILITY_TIMEOUT_S": "2",
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
        # The survivor's sweep looks every second for runs due for a second.
        "ROLLGRAPH_ORPHAN_SWEEP_S": "1",
        "ROLLGRAPH_EVALUATION_RETRY_S": "1",
    }
    db = create_db_engine(database_url)
    with ExitStack() as stack:
        stack.callback(db.dispose)
        url = stack.enter_context(serve(env))
        workers = {name: stack.enter_context(worker(env, name=name)) for name in ("w1", "w2")}
        client = stack.enter_context(
            httpx.Client(base_url=url, headers=bearer(admin_key), timeout=60)
        )
        source = GREET + EVALUATORS
        assert client.post("/v1/workflows", json={"source": source}).status_code == 201
        assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
        accepted = client.post(
            "/v1/run", json={"workflow": "greet", "input": {"prompt": "a lamp"}, "mode": "async"}
        )
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        stack.callback(r.close)

        def taken() -> Any:
            try:
                return r.xpending_range(f"{redis_prefix}:runs", "workers", "-", "+", 10)
            except redis.ResponseError:  # no consumer group before a worker reads
                return None

        pending = wait_for(
            taken,
            timeout_s=30,
            what="a worker to take the run",
        )
        holder = str(pending[0]["consumer"])

        def stored() -> Any:
            with db.connect() as c:
                return c.execute(
                    text("SELECT status, evaluation_due_at FROM run WHERE id = :id"), {"id": run_id}
                ).first()

        row = wait_for(
            lambda: (found := stored()) is not None and found[0] == "succeeded" and found,
            timeout_s=30,
            what="the run to be stored",
        )
        workers[holder].send_signal(signal.SIGKILL)
        workers[holder].wait()
        assert row[1] is not None  # stored due: its evaluators had not stored its scores yet

        def scores() -> list[tuple[str, float]]:
            with db.connect() as c:
                return [
                    (m, v)
                    for m, v in c.execute(
                        text(
                            "SELECT metric, value FROM outcome WHERE run_id = :id ORDER BY metric"
                        ),
                        {"id": run_id},
                    )
                ]

        # Killed before its scores were stored: they are written in batches every 0.5 s.
        assert scores() == []
        wait_for(
            lambda: len(scores()) == 2 and stored()[1] is None,
            timeout_s=60,
            what="the survivor to score the run",
        )
        time.sleep(2.5)  # more sweeps: nothing is stored twice
        got = sorted(scores())
        assert [m for m, _ in got] == ["eval.quality", "eval.shape"]
        assert got[1][1] == 1.0 and 0.75 < got[0][1] < 1.0  # writer-large's 0.86
        assert stored()[1] is None
