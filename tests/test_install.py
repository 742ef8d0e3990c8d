"""The README's first commands and its deployment commands do what it says: ``pip install .``
in the repository gives a working ``rollgraph`` command (with the migrations the server needs),
and each command of the "Deployment: Docker and Compose" block names an image, a file, a port
and the variables that the Dockerfile and ``compose.yaml`` (checked in ``test_deploy.py``)
agree with. No Docker engine runs here, so the docker commands are checked against the files
they use, not executed."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from control_plane.settings import admin_key_problem
from tests.test_deploy import COMPOSE, DOCKERFILE, ROOT, instructions, required_variables

README = ROOT / "README.md"


def sh_block(after: str) -> list[str]:
    """The commands of the first ``sh`` block after the line ``after`` (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after) if after else 0
    match = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert match is not None, f"no sh block after {after!r}"
    lines = [line.split("  #")[0].strip() for line in match.group(1).splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_readme_starts_with_installing_from_the_repository() -> None:
    first = README.read_text(encoding="utf-8").split("\n## ")[0]  # before the first section
    assert sh_block("") == ["pip install .", "rollgraph --help"]
    assert "```sh" in first


@pytest.mark.slow
def test_pip_install_gives_the_rollgraph_command(tmp_path: Path) -> None:
    target = tmp_path / "site"
    # The README's `pip install .`, into a directory of its own; the dependencies are the
    # venv's (no network here) and so is the build backend (hatchling, pinned in the lock).
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    install += ["--no-deps", "--no-build-isolation", "--no-index", "--target", str(target)]
    result = subprocess.run(
        [*install, str(ROOT)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    command = target / "bin" / "rollgraph"
    assert command.is_file()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [sys.executable, "-c", "import control_plane; print(control_plane.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(target)  # the installed copy, not the tree
    migrations = list((target / "control_plane" / "store" / "alembic").rglob("*.py"))
    assert len(migrations) > 5, migrations  # package data the server applies on start
    # The built console and the docs' assets: served without Node.
    dist = target / "control_plane" / "console_dist"
    assert (dist / "index.html").is_file() and list((dist / "assets").glob("*.js"))
    assert (dist / "vendor" / "swagger-ui" / "swagger-ui-bundle.js").is_file()
    helped = subprocess.run(
        [str(command), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout and "worker" in helped.stdout


def test_readme_deployment_commands_match_the_files() -> None:
    commands = sh_block("### Deployment: Docker and Compose")
    assert len(commands) == 4, commands
    build, export, run, up = (shlex.split(command) for command in commands)
    # docker build -t TAG .  (the Dockerfile at the root)
    assert build[:2] == ["docker", "build"] and build[-1] == "."
    tag = build[build.index("-t") + 1]
    assert DOCKERFILE.is_file()
    # export ROLLGRAPH_ADMIN_KEY="$(python3 -c '...')": the recipe makes a key rollgraph accepts
    assert export[0] == "export"
    name, _, value = export[1].partition("=")
    code = re.fullmatch(r"\$\(python3 -c '(.*)'\)", value)
    assert name == "ROLLGRAPH_ADMIN_KEY" and code is not None, export
    key = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert admin_key_problem(key) is None
    # docker run -p HOST:PORT -e ROLLGRAPH_ADMIN_KEY TAG: the port the image serves on, the key
    assert run[:2] == ["docker", "run"] and run[-1] == tag
    published = run[run.index("-p") + 1].split(":")[-1]
    assert ("EXPOSE", published) in instructions()
    assert run[run.index("-e") + 1] == name
    volume = run[run.index("-v") + 1].split(":")[1]  # where the image keeps its SQLite store
    assert ("VOLUME", f'["{volume}"]') in instructions()
    # docker compose up -d: compose.yaml at the root, and every variable it requires is set
    assert up[:3] == ["docker", "compose", "up"] and COMPOSE.is_file()
    assert required_variables(COMPOSE.read_text(encoding="utf-8")) == {name}
