"""Run-event streams when things go wrong.

* A ``rollgraph serve`` told to stop (SIGTERM) ends its streams at once, so that its graceful
  shutdown goes on: uvicorn waits for every open response before the app's own shutdown stores
  the async runs in flight as interrupted. Without the drain an open stream held both for up to
  ``ROLLGRAPH_RUN_EVENTS_MAX_S``. The run is the simulator's, slowed a hundredfold
  (``ROLLGRAPH_SIM_TIME_SCALE``) so that it is still running when the server is stopped.
* The streams of one run share a read, and leave half of the admission gate to requests.
* With a Redis that does not answer, a replica that does not execute the run still streams it:
  the notifications are lost (the subscription keeps retrying), the store is polled at the
  short interval.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, event

import engine
from control_plane.errors import NotFound, StoreBusy
from control_plane.runs.schemas import RunDetail
from control_plane.runs.signals import RunSignals
from control_plane.runs.stream import RunStreams
from control_plane.settings import Settings
from control_plane.store.db import UnitGate, make_session_factory
from tests.fixtures import GREET, app_client, bearer
from tests.processes import free_port, stop, wait_ready
from tests.sse import events, served
from tests.test_run_events import FAST, assert_in_order, held_resume, read_all, settings
from tests.test_runs_async import Gate, gated_client, node_kinds


def test_a_stopping_server_ends_its_streams_then_stores_its_runs_interrupted(
    tmp_path: Path, admin_key: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'rollgraph.db'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "ROLLGRAPH_SIM_TIME_SCALE": "100",
        "ROLLGRAPH_SHUTDOWN_GRACE_S": "0",
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
        "REDIS_URL": "",
        "ROLLGRAPH_REDIS_URL": "",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "control_plane.cli", "serve", "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    headers = bearer(admin_key)
    try:
        wait_ready(proc, f"{url}/readyz", timeout_s=60, what="the server")
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            assert client.post("/v1/workflows", json={"source": GREET}).status_code == 201
            assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"})
            body = {"workflow": "greet", "input": {"prompt": "hi"}, "mode": "async"}
            run_id = client.post("/v1/run", json=body).json()["run_id"]
        with events(url, run_id, headers=headers) as (response, frames):
            assert response.status_code == 200
            for event in frames:
                if event.name == "run":
                    break  # the stream is open and has sent what there is
            proc.terminate()
            rest = [e.name for e in frames]
        assert "end" not in rest  # closed by the stopping server, not by the run's end
        proc.wait(timeout=60)
    finally:
        stop(proc)
    with app_client(database_url, admin_key) as client:
        run = client.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "failed" and "interrupted" in run["error"], run


def test_a_redis_that_does_not_answer_leaves_streams_polling(
    database_url: str, admin_key: str
) -> None:
    gate = Gate()
    with gated_client(database_url, admin_key, gate):  # billing v1 on prod
        pass
    dead = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    # Replica A executes the run, B streams it: B hears nothing from A, it reads the store.
    with (
        served(
            settings(database_url, admin_key, **FAST, **dead),
            run_engine=lambda: engine.Engine(kinds=node_kinds(gate)),
        ) as a,
        served(settings(database_url, admin_key, **FAST, **dead), run_engine=engine.Engine) as b,
    ):
        headers = bearer(admin_key)
        run_id = held_resume(a.url, headers, gate)
        with events(b.url, run_id, headers=headers) as (response, frames):
            assert response.status_code == 200
            got = read_all(frames, gate)
        assert not b.app.state.runs.signals.subscribed.is_set()
    assert_in_order(got)
    assert got[-1].name == "end" and got[-1].data["status"] == "succeeded"


def test_the_streams_of_one_run_share_a_read_and_leave_half_the_gate_to_requests(
    db_engine: Engine, admin_key: str
) -> None:
    statements: list[str] = []
    event.listen(db_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    gate = UnitGate(make_session_factory(db_engine), limit=4)
    streams = RunStreams(
        units=gate, signals=RunSignals(), settings=Settings(env="test", admin_key=admin_key)
    )

    async def five_streams_wake() -> list[BaseException | RunDetail]:
        return await asyncio.gather(
            *(streams._read("r-1") for _ in range(5)), return_exceptions=True
        )

    answers = asyncio.run(five_streams_wake())
    assert all(isinstance(a, NotFound) for a in answers)  # one answer, to each of them
    assert len([s for s in statements if "FROM run" in s]) == 1
    gate.in_flight = 2  # requests hold half the gate: streams read nothing
    with pytest.raises(StoreBusy):
        asyncio.run(streams._read("r-1"))
    assert len([s for s in statements if "FROM run" in s]) == 1
