"""What the console's tests share: where its sources are, the digest of those sources (the same
computation as ``console/scripts/sources.mjs``), and whether Node, the console's packages and
Chromium are here; a test that needs a missing one is skipped, or fails under ``CI=true``
(``.ci/run`` installs them)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

__all__ = [
    "CHROMIUM",
    "CONSOLE",
    "ROOT",
    "need_chromium",
    "need_node",
    "sources_digest",
]

ROOT = Path(__file__).resolve().parent.parent
CONSOLE = ROOT / "console"
CHROMIUM = Path("/usr/bin/chromium")
# What the build is made from; *.test.ts are not part of it (see sources.mjs).
_SOURCE_ROOTS = (
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "vite.config.ts",
    "public",
    "scripts",
    "src",
)


def sources_digest(root: Path = CONSOLE) -> str:
    files: list[str] = []
    for entry in _SOURCE_ROOTS:
        path = root / entry
        if path.is_dir():
            files += [
                p.relative_to(root).as_posix()
                for p in path.rglob("*")
                if p.is_file() and not p.name.endswith(".test.ts")
            ]
        else:
            files.append(entry)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0")
        digest.update((root / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run; .ci/run installs it)")
    pytest.skip(reason)


def need_node() -> str:
    """The ``npm`` command, with the console's packages installed (``npm ci``)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        _missing("no Node/npm on this machine")
    if not (CONSOLE / "node_modules" / ".package-lock.json").is_file():
        _missing("the console's packages are not installed: run `make console`")
    assert npm is not None
    return npm


def need_chromium() -> Path:
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _missing("Python Playwright is not installed (it comes with the dev dependencies)")
    return CHROMIUM
