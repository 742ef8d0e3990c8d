"""A private PostgreSQL (``initdb`` on a free port in a temporary directory) stopped and started
again under load, with a real ``rollgraph serve`` and ``rollgraph worker``.

``tests/test_store_outage.py`` cuts a TCP relay in front of the shared PostgreSQL; here the
server itself goes away (``pg_ctl stop -m fast``: connections terminated, then refused) and
comes back on the same port. Clients must see 503 ``store_unavailable`` with ``Retry-After``
while it is away, never a 500 and never a dropped connection; the service must come back by
itself; every run answered 200/202 must be in the store, and every accepted async run must end.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from control_plane.store.db import create_db_engine
from tests.faults import GREET_V1, ended, private_postgres, rollgraph, wait_for
from tests.fixtures import REDIS_URL, bearer
from tests.processes import free_port

pytestmark = pytest.mark.slow

CLIENTS = 6


class Load:
    """``CLIENTS`` threads sending sync runs, async runs, run reads and lists in turn."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.answered: dict[str, str] = {}  # run id -> mode
        self.codes: Counter[int] = Counter()
        self.unavailable: list[httpx.Response] = []
        self.broken: list[str] = []  # 5xx other than 503, transport errors
        self.last_ok = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self, i: int) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                body: dict[str, Any] = {"workflow": "greet", "input": {"prompt": f"{i}-{n}"}}
                self._send(client, "POST", "/v1/run", body)
                self._send(client, "POST", "/v1/run", {**body, "mode": "async"})
                if self.answered:
                    run_id = next(reversed(self.answered))
                    self._send(client, "GET", f"/v1/runs/{run_id}", None)
                self._send(client, "GET", "/v1/runs?limit=20", None)

    def _send(self, client: httpx.Client, method: str, path: str, body: Any) -> None:
        try:
            answer = client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            with self._lock:
                self.broken.append(f"{method} {path}: {exc!r}")
            return
        with self._lock:
            self.codes[answer.status_code] += 1
            if answer.status_code in (200, 202):
                self.last_ok = time.monotonic()
                if path == "/v1/run":
                    self.answered[answer.json()["run_id"]] = body.get("mode", "sync")
            elif answer.status_code == 503:
                self.unavailable.append(answer)
            elif answer.status_code >= 500:
                self.broken.append(f"{method} {path}: {answer.status_code} {answer.text[:300]}")


def _stored(database_url: str, ids: list[str]) -> dict[str, str]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, status FROM run WHERE id = ANY(:ids)"), {"ids": ids}
            )
            return {row.id: row.status for row in rows}
    finally:
        engine.dispose()


def _env(admin_key: str, database_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "ROLLGRAPH_REDIS_PREFIX": redis_prefix,
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
        # The models' simulated seconds are not what is tested here: without them one worker
        # drains the async runs the outage left waiting in seconds, not minutes.
        "ROLLGRAPH_SIM_TIME_SCALE": "0",
    }


def test_postgres_stopped_and_started_under_load_is_503_then_back_and_loses_nothing(
    admin_key: str, redis_prefix: str, tmp_path: Path
) -> None:
    with private_postgres() as (database_url, stop_postgres, start_postgres):
        env = _env(admin_key, database_url, redis_prefix)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        headers = bearer(admin_key)
        with (
            rollgraph(["serve", "--port", str(port)], env, tmp_path / "serve.log",
                      ready=f"{url}/readyz"),
            rollgraph(["worker", "--name", "w1"], env, tmp_path / "worker.log"),
            httpx.Client(base_url=url, headers=headers, timeout=30) as client,
        ):  # fmt: skip
            assert client.post("/v1/workflows", json={"source": GREET_V1}).status_code == 201
            assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
            with Load(url, headers) as load:
                time.sleep(3)
                before = load.codes.copy()
                stop_postgres()
                time.sleep(5)
                start_postgres()
                restarted = time.monotonic()
                wait_for(lambda: load.last_ok > restarted, timeout_s=60, what="the service back")
                time.sleep(3)
            assert not load.broken, load.broken[:5]
            assert before[200] > 0 and load.codes[200] > before[200], load.codes
            assert load.unavailable, f"no request met the outage: {load.codes}"
            for answer in load.unavailable:
                error = answer.json()["error"]
                assert error["code"] in ("store_unavailable", "store_busy"), error
                assert int(answer.headers["Retry-After"]) >= 1
            # Every answered run is in the store, and every accepted async run ends.
            stored = _stored(database_url, list(load.answered))
            assert set(stored) == set(load.answered)
            for run_id in [i for i, mode in load.answered.items() if mode == "async"]:
                try:
                    run = wait_for(partial(ended, client, run_id), timeout_s=120, what=run_id)
                except AssertionError:
                    logs = {p.name: p.read_text()[-3000:] for p in tmp_path.glob("*.log")}
                    raise AssertionError(f"run {run_id} never ended; logs: {logs}") from None
                assert run["status"] in ("succeeded", "failed"), run


def test_a_worker_started_while_postgres_is_away_waits_for_it_and_then_runs(
    admin_key: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Once a worker that started slower than the store went away crashed at start (its
    migrations found no server) and left the queue to no one; now it waits for the store."""
    with private_postgres() as (database_url, stop_postgres, start_postgres):
        env = _env(admin_key, database_url, redis_prefix)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        worker_log = tmp_path / "worker.log"
        with (
            rollgraph(["serve", "--port", str(port)], env, tmp_path / "serve.log",
                      ready=f"{url}/readyz"),
            httpx.Client(base_url=url, headers=bearer(admin_key), timeout=30) as client,
        ):  # fmt: skip
            assert client.post("/v1/workflows", json={"source": GREET_V1}).status_code == 201
            assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
            stop_postgres()
            with rollgraph(["worker", "--name", "w1"], env, worker_log) as worker:
                wait_for(
                    lambda: "waiting for it" in worker_log.read_text(),
                    timeout_s=60,
                    what="the worker saying it waits for the store",
                )
                assert worker.poll() is None, worker_log.read_text()[-2000:]
                start_postgres()
                body = {"workflow": "greet", "input": {"prompt": "x"}, "mode": "async"}
                accepted = wait_for(
                    lambda: (r := client.post("/v1/run", json=body)).status_code == 202 and r,
                    timeout_s=60,
                    what="the server taking runs again",
                )
                run_id = accepted.json()["run_id"]
                run = wait_for(partial(ended, client, run_id), timeout_s=60, what=run_id)
                assert run["status"] == "succeeded", run
                assert worker.poll() is None
                assert "the store is back" in worker_log.read_text()
