"""``python -m demos.server`` serves the example set up (prod on v3.2, v3.3 at 10 %), stops
cleanly on Ctrl-C (SIGINT), and starting it again on the same database changes nothing."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from control_plane.client import Client

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _demo_once(database_url: str, admin_key: str, log: Path) -> tuple[dict[str, Any], str]:
    """Start the demo, wait until it says it is serving, read the rollout through the API, stop
    it with SIGINT (Ctrl-C); its standard output is returned too."""
    port = _free_port()
    env = {**os.environ, "ROLLGRAPH_ENV": "test", "ROLLGRAPH_ADMIN_KEY": admin_key}
    command = [sys.executable, "-m", "demos.server", "--port", str(port)]
    with log.open("w") as stderr:  # a file: nobody has to drain it while the demo runs
        proc = subprocess.Popen(
            [*command, "--database-url", database_url, "--time-scale", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "rollgraph demo serving at" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    status: dict[str, Any] | None = None
    try:
        if serving.wait(timeout=60):
            with Client(f"http://127.0.0.1:{port}", admin_key) as client:
                status = client.rollout_status("product-video")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()
    err = log.read_text()
    assert status is not None, err
    assert proc.returncode == 0, err
    return status, "".join(lines)


@pytest.mark.slow
def test_demo_sets_up_the_rollout_and_is_idempotent(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'demo.db'}"
    admin_key = "rgk" + secrets.token_urlsafe(32)  # never "-…", which a CLI reads as an option
    status, out = _demo_once(database_url, admin_key, tmp_path / "first.log")
    assert status["baseline"] == "v3.2"
    assert status["candidates"] == [{"version": "v3.3", "percent": 10.0, "active": True}]
    assert "product-video v3.2 applied" in out
    assert "curl -s http://127.0.0.1:" in out
    assert '"Authorization: Bearer $ROLLGRAPH_ADMIN_KEY"' in out  # a real key is not printed
    assert admin_key not in out
    again, out = _demo_once(database_url, admin_key, tmp_path / "second.log")
    assert again == status  # same salt and update time: nothing was set again
    assert "product-video v3.2 unchanged" in out
    assert "product-video v3.3 unchanged" in out
    assert "prod already on v3.2" in out
