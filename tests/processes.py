"""Starting and stopping the real processes end-to-end tests run against (``rollgraph serve``,
``rollgraph worker``, Prometheus, redis-server): one free-port picker, one readiness poll, one
stop sequence, so every starter waits and cleans up the same way."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

__all__ = ["free_port", "own_redis", "stop", "wait_ready"]


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    *,
    timeout_s: float,
    what: str,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``url`` until it answers 200; fail with ``output()`` (its log) if ``proc`` exits
    first, or when ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited: {output()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} did not become ready in {timeout_s:g} s")


def stop(proc: subprocess.Popen[bytes], *, timeout_s: float = 20) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def own_redis(workdir: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A ``redis-server`` of the test's own on a free port, with an fsync'ed append-only file
    (the deployment the run queue needs: a restarted Redis keeps its streams), for tests that stop
    and start it. Yields its URL and ``stop`` / ``start`` functions. Without the binary the test
    is skipped (under ``CI=true`` it fails)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
        "--appendonly", "yes", "--appendfsync", "always", "--save", "",
    ]  # fmt: skip
    proc: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        proc.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 20
        while not _pings(url):
            if proc[-1].poll() is not None:
                raise AssertionError(f"redis-server exited with {proc[-1].returncode}")
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not answer within 20 s")
            time.sleep(0.05)

    def stop() -> None:
        proc[-1].terminate()  # SIGTERM: Redis flushes its append-only file and exits
        proc[-1].wait(timeout=20)

    start()
    try:
        yield url, stop, start
    finally:
        if proc[-1].poll() is None:
            stop()


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
