"""The layers, checked from the source: imports point down, never up.

``engine/`` and ``analysis/`` are libraries of their own (a notebook or a worker embeds them):
they import nothing of the control plane, of the web framework, of SQL, Redis or Prometheus.
Inside ``control_plane/`` every package (a "room") has a level; a module may import its own
room and rooms below it. The order and its few deliberate exceptions are drawn and explained in
``docs/ARCHITECTURE.md``; this test keeps the two in step.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Top-level packages a pure library must not import.
FORBIDDEN_IN_LIBRARIES = (
    "control_plane",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "redis",
    "prometheus_client",
    "uvicorn",
    "opentelemetry",
)

# control_plane's rooms, from the top (entry points) down; a room imports only rooms listed
# after it. Keep in step with docs/ARCHITECTURE.md.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    # The Python client is an entry point too: it reads the domains' response schemas.
    ("client", "app", "worker"),
    ("runtime",),
    # The console and API docs pages: static files, imported by the app only.
    ("web",),
    ("outcomes",),
    ("runs",),
    ("experiments",),
    ("rollouts",),
    ("workflows",),
    ("access",),
    ("audit",),
    ("queue",),
    ("registry",),
    ("api",),
    ("store",),
    ("metrics",),
    ("telemetry",),
    ("kit",),
    ("errors", "settings"),
)
LEVEL = {room: level for level, rooms in enumerate(LEVELS) for room in rooms}
# The one cross-cut: every resource's HTTP routes need the caller's key checked, including the
# routes of rooms that access itself sits above (audit records key changes; the queue is below
# every domain). Only a routes module may take it, and only the dependency aliases.
CROSS_CUTS = {("routes.py", "control_plane.access.deps")}


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute module a file imports, TYPE_CHECKING blocks included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _room(path: Path) -> str:
    parts = path.relative_to(ROOT / "control_plane").parts
    return parts[0].removesuffix(".py")


@pytest.mark.parametrize("library", ["engine", "analysis"])
def test_libraries_import_nothing_of_the_control_plane_web_or_storage(library: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _modules(library)
        for line, module in _imports(path)
        if module.split(".")[0] in FORBIDDEN_IN_LIBRARIES
    ]
    assert found == []


def test_analysis_does_not_import_the_engine() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _modules("analysis")
        for line, module in _imports(path)
        if module.split(".")[0] == "engine"
    ]
    assert found == []


def test_every_control_plane_room_has_a_level() -> None:
    rooms = {_room(path) for path in _modules("control_plane")} - {"__init__"}
    assert sorted(rooms - set(LEVEL)) == []


def test_control_plane_imports_point_down() -> None:
    upward = []
    for path in _modules("control_plane"):
        room = _room(path)
        if room == "__init__":
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "control_plane" or len(parts) < 2:
                continue
            target = parts[1]
            if (path.name, module) in CROSS_CUTS:
                continue
            if target != room and LEVEL[target] <= LEVEL[room]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports {module}")
    assert upward == []
