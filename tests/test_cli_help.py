"""The ``rollgraph`` command's shape (issue 18): help on every argument of every command,
``--json`` on every command that prints an answer, ``--version``; and how long the client waits
for a sync run."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.cli.main import build_parser, main
from control_plane.client import SyncClient
from control_plane.client.core import run_timeout_s
from tests.fixtures import ROOT

# Commands that start a process: they log, they do not answer.
PROCESSES = {"serve", "worker"}


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command's parser with its words, the top level included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def _leaves() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    return [
        (path, p)
        for path, p in _commands(build_parser())
        if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
    ]


def test_every_argument_and_command_has_help() -> None:
    missing = []
    commands = list(_commands(build_parser()))
    assert len(commands) > 30  # the walk reaches the nested commands (keys create, runs follow)
    for path, parser in commands:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{' '.join((*path, n))}" for n in action.choices if n not in helped]
            elif not action.help or action.help == argparse.SUPPRESS:
                where = " ".join(path) or "rollgraph"
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_command_that_answers_has_json() -> None:
    leaves = _leaves()
    names = {" ".join(path) for path, _ in leaves}
    assert {"runs list", "runs follow", "outcome", "versions", "keys create"} <= names
    without = [
        " ".join(path)
        for path, p in leaves
        if path[0] not in PROCESSES and not any("--json" in a.option_strings for a in p._actions)
    ]
    assert without == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"rollgraph {importlib.metadata.version('rollgraph')}"
    done = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.split()[0]) == (0, "rollgraph")


def test_validate_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nnodes: {a: {uses: nope}}\n", encoding="utf-8")
    good = ROOT / "examples" / "product-video" / "v3.2.yaml"
    code = main(["validate", "--json", str(good), str(broken), str(tmp_path / "missing.yaml")])
    verdicts = json.loads(capsys.readouterr().out)
    assert code == 2  # the worst: a file that cannot be read
    assert [v["valid"] for v in verdicts] == [True, False, False]
    assert verdicts[0]["workflow"] == "product-video" and verdicts[0]["nodes"] > 1
    assert verdicts[1]["problems"][0]["location"].startswith("nodes.a")
    assert "cannot read" in verdicts[2]["error"]


def test_a_sync_run_is_waited_for_past_the_servers_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ROLLGRAPH_RUN_DEADLINE_S", raising=False)
    monkeypatch.delenv("ROLLGRAPH_RUN_STORE_MARGIN_S", raising=False)
    # The server's defaults: a 60 s deadline and 30 s to store the run after it.
    assert run_timeout_s(30.0) == 90.0
    assert run_timeout_s(200.0) == 200.0  # never shorter than asked
    assert run_timeout_s(30.0, 120.0) == 150.0
    monkeypatch.setenv("ROLLGRAPH_RUN_DEADLINE_S", "300")
    assert run_timeout_s(30.0) == 330.0
    monkeypatch.setenv("ROLLGRAPH_RUN_DEADLINE_S", "nonsense")
    assert run_timeout_s(30.0) == 90.0
    with SyncClient("http://127.0.0.1:1") as client:
        assert (client.timeout_s, client.run_timeout_s) == (30.0, 90.0)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_weak_admin_key_is_one_line_and_exit_2(command: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLGRAPH_")}
    env |= {
        "ROLLGRAPH_ENV": "prod",
        "ROLLGRAPH_ADMIN_KEY": "changeme",
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{tmp_path / 'rollgraph.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"rollgraph {command}: ROLLGRAPH_ADMIN_KEY is too weak")
    assert "Traceback" not in done.stderr
