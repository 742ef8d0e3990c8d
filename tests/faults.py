"""What the fault tests (``tests/test_faults_*.py``) share: real ``rollgraph`` processes they
can signal, a private PostgreSQL they can stop and start, and reading a process's counters."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import free_port, stop, wait_ready

__all__ = [
    "GREET_V1",
    "PG_BIN",
    "PrivateRedis",
    "counter",
    "ended",
    "private_postgres",
    "private_redis",
    "rollgraph",
    "wait_for",
]

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("ROLLGRAPH_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
GREET_V1 = """
name: greet
version: v1
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
outputs:
  text: "${write.text}"
"""


@contextmanager
def rollgraph(
    args: list[str], env: Mapping[str, str], log: Path, *, ready: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``rollgraph ARGS`` as a process the test may signal (its output in ``log``); waits for
    ``ready`` (a URL answering 200) when given, and stops the process afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            if ready is not None:
                wait_ready(proc, ready, timeout_s=60, what=args[0], output=log.read_text)
            yield proc
        finally:
            stop(proc)


def counter(url: str, name: str) -> float:
    """The sum of a counter's samples (every label set) at ``url``'s ``/metrics``."""
    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        total += sum(s.value for s in family.samples if s.name == name)
    return total


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ended(client: httpx.Client, run_id: str) -> dict[str, Any] | None:
    answer = client.get(f"/v1/runs/{run_id}")
    if answer.status_code != 200:
        return None
    run: dict[str, Any] = answer.json()
    return run if run["status"] in ("succeeded", "failed") else None


class PrivateRedis:
    """A ``redis-server`` of the test's own with an fsync'ed append-only file; ``proc`` is the
    running one (the test may signal it), ``start()`` starts it again after it died."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is not installed")
            pytest.skip("redis-server is not installed")
        port = free_port()
        self.url = f"redis://127.0.0.1:{port}/0"
        self.command = [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ]  # fmt: skip
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        wait_for(self._pings, timeout_s=20, what="redis-server to answer")

    def _pings(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(workdir)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)  # a frozen one could not handle SIGTERM
        stop(server.proc)


def _as_postgres_user() -> list[str]:
    # initdb and postgres refuse to run as root; a root test runs them as the `postgres` user.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def private_postgres() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A PostgreSQL cluster of the test's own (``initdb`` in a temporary directory, trust auth,
    loopback, a free port). Yields its SQLAlchemy URL (database ``postgres``) and ``stop`` /
    ``start`` functions (``pg_ctl stop -m fast``: every connection is dropped, as when the
    server goes away). Without the binaries the test is skipped (under ``CI=true`` it fails)."""
    if not (PG_BIN / "initdb").exists():
        reason = f"PostgreSQL's binaries are not in {PG_BIN} (set ROLLGRAPH_TEST_PG_BIN)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="rollgraph-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    user = _as_postgres_user()
    subprocess.run(
        [*user, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
         "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [*user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log")]

    def start() -> None:
        subprocess.run([*pg_ctl, "-o", options, "-w", "start"], check=True, capture_output=True)

    def halt() -> None:
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], check=True, capture_output=True)

    start()
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", halt, start
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
