"""``python -m demos.server`` (``make run``) sets a new store up (prod on v3.2, v3.3 at 10 %),
stops cleanly on Ctrl-C (SIGINT), and started again on the same store keeps what the user
changed in between, saying so; ``make run PORT=…`` serves on that port; both print how to put
``rollgraph`` on PATH."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from control_plane.client import SyncClient
from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv `make run` would use
During = Callable[[SyncClient], None]


def _environment(admin_key: str, **extra: str) -> dict[str, str]:
    """The test's environment without the venv on PATH (as after a plain `make run`)."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != BIN)
    return {
        **os.environ,
        "PATH": path,
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        **extra,
    }


def _serve_once(
    command: list[str], env: dict[str, str], port: int, log: Path, during: During | None = None
) -> tuple[dict[str, Any], str, int]:
    """Start the demo, wait until it says it is serving, call ``during`` with a client, read the
    rollout through the API, then stop it as Ctrl-C in a terminal does (SIGINT to its process
    group). Returns the rollout, its standard output and its exit status."""
    with log.open("w") as stderr:  # a file: nobody has to drain it while the demo runs
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
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
            with SyncClient(f"http://127.0.0.1:{port}", env["ROLLGRAPH_ADMIN_KEY"]) as client:
                if during is not None:
                    during(client)
                status = client.rollout_status("product-video").model_dump(mode="json")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()
    err = log.read_text()
    assert status is not None, err
    return status, "".join(lines), proc.returncode


def _demo(database_url: str, admin_key: str, log: Path, during: During | None = None) -> Any:
    port = free_port()
    command = [sys.executable, "-m", "demos.server", "--port", str(port)]
    command += ["--database-url", database_url, "--time-scale", "0"]
    status, out, code = _serve_once(command, _environment(admin_key), port, log, during)
    assert code == 0, log.read_text()
    return status, out


def _path_hint() -> str:
    shown = os.path.relpath(BIN, ROOT) if BIN.is_relative_to(ROOT) else str(BIN)
    return f"`source {shown}/activate` puts it there (or call {shown}/rollgraph)"


def _change_prod(client: SyncClient) -> None:
    """What a user does after the set-up: promote the candidate, roll the old version out."""
    client.promote("product-video", "v3.3", label="prod")
    client.rollout_set("product-video", "v3.2", 20, label="prod")


@pytest.mark.slow
def test_demo_sets_up_a_new_store_and_keeps_changes_across_restarts(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'demo.db'}"
    admin_key = "rgk" + secrets.token_urlsafe(32)  # never "-…", which a CLI reads as an option
    status, out = _demo(database_url, admin_key, tmp_path / "first.log", during=_change_prod)
    # Read after the change: the first start had set prod to v3.2 with v3.3 at 10 %.
    assert "a new store: applying the examples to product-video" in out
    assert "product-video v3.2 applied" in out and "product-video v3.3 applied" in out
    assert "prod → v3.2" in out and "rollout on prod: v3.3 at 10 %" in out
    assert "Run the workflow (prod on v3.2, v3.3 for 10 % of user ids, always the same ones)" in out
    assert f"store: {database_url}\n" in out
    assert _path_hint() in out
    assert "curl -s http://127.0.0.1:" in out
    assert '"Authorization: Bearer $ROLLGRAPH_ADMIN_KEY"' in out  # a real key is not printed
    assert admin_key not in out
    assert status["baseline"] == "v3.3"
    assert status["candidates"] == [{"version": "v3.2", "percent": 20.0, "active": True}]

    again, out = _demo(database_url, admin_key, tmp_path / "second.log")
    assert again == status  # same salt and update time: nothing was set again
    assert (
        "product-video is already in this store, kept as you left it: prod on v3.3, v3.2 for "
        "20 % of user ids, always the same ones. The examples are applied to a new store only."
    ) in out
    assert "applied\n" not in out and "prod →" not in out


@pytest.mark.slow
def test_make_run_serves_on_port(tmp_path: Path) -> None:
    port = free_port()
    admin_key = "rgk" + secrets.token_urlsafe(32)
    venv = BIN.parent
    # -o: the venv is used as it is (`make run` would otherwise reinstall it when the lock is
    # newer than its stamp); the store is the test's own, through the settings' environment.
    command = ["make", "-o", f"{venv}/.installed", "run", f"PORT={port}", f"VENV={venv}"]
    env = _environment(admin_key, ROLLGRAPH_DATABASE_URL=f"sqlite:///{tmp_path / 'run.db'}")
    status, out, code = _serve_once(command, env, port, tmp_path / "make.log")
    assert f"-m demos.server --port {port}" in out  # make's echo of the command
    assert f"rollgraph demo serving at http://127.0.0.1:{port} " in out
    assert f"The console: http://127.0.0.1:{port}/console " in out
    assert status["baseline"] == "v3.2"
    assert _path_hint() in out
    assert "rollgraph demo: stopped" in out
    # make itself reports the Ctrl-C it got (or passes the server's clean exit on).
    assert code in (0, -signal.SIGINT, 2, 130), (code, (tmp_path / "make.log").read_text())


def test_demo_refuses_a_weak_key_in_one_line() -> None:
    env = _environment("changeme", ROLLGRAPH_ENV="prod")
    result = subprocess.run(
        [sys.executable, "-m", "demos.server", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("rollgraph demo: ROLLGRAPH_ADMIN_KEY is too weak"), line
    assert "changeme" not in result.stderr  # the refused key is not echoed into logs
