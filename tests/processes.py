"""Starting and stopping the real processes end-to-end tests run against (``rollgraph serve``,
``rollgraph worker``, Prometheus, redis-server): one free-port picker, one readiness poll, one
stop sequence, so every starter waits and cleans up the same way."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx

__all__ = ["free_port", "stop", "wait_ready"]


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
