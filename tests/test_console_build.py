"""The console's generated and built files are never stale: the committed OpenAPI document is
what the app describes, the generated TypeScript client is what openapi-typescript makes of it,
the build in the package was made from the console's current sources; and the console's own unit
tests (vitest: diff colouring, union layout) pass. The Node ones need Node and the console's
packages: skipped without them, failing under ``CI=true``."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

from control_plane.cli.openapi import openapi_text
from control_plane.web import CONSOLE_DIST
from tests.console import CONSOLE, ROOT, need_node, sources_digest

FIX = "run `make console` and commit the result"


def test_the_committed_openapi_document_is_the_apps() -> None:
    committed = (CONSOLE / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_text(), f"console/openapi.json is out of date: {FIX}"


def test_the_build_in_the_package_is_made_from_the_current_sources() -> None:
    stamp = CONSOLE_DIST / "sources.sha256"
    assert stamp.is_file(), f"no console build in control_plane/console_dist: {FIX}"
    assert stamp.read_text().strip() == sources_digest(), f"the console build is stale: {FIX}"


def test_the_generated_client_is_what_the_openapi_document_gives(tmp_path: Path) -> None:
    npm = need_node()
    fresh = tmp_path / "schema.d.ts"
    subprocess.run(
        [npm, "exec", "--", "openapi-typescript", "openapi.json", "-o", str(fresh)],
        cwd=CONSOLE,
        check=True,
        capture_output=True,
        timeout=180,
    )
    committed = (CONSOLE / "src" / "api" / "schema.d.ts").read_text(encoding="utf-8")
    assert fresh.read_text(encoding="utf-8") == committed, (
        f"console/src/api/schema.d.ts is out of date: {FIX}"
    )


def test_the_console_unit_tests_pass() -> None:
    npm = need_node()
    result = subprocess.run(
        [npm, "test"], cwd=CONSOLE, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


def test_make_console_rebuilds_when_a_source_changes() -> None:
    # `-W FILE`: as if FILE had just changed; `-n`: say what would run, run nothing.
    for source in ("console/src/App.tsx", "console/package-lock.json", "console/index.html"):
        dry = subprocess.run(
            ["make", "-n", "-W", source, "console"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert dry.returncode == 0, dry.stderr
        assert "npm run gen && npm run build" in dry.stdout, (source, dry.stdout)


def test_make_without_node_serves_on_and_says_how_to_get_the_console(tmp_path: Path) -> None:
    # A PATH with what make's recipes need but no node or npm.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("find", "python3"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    make = shutil.which("make")
    assert make is not None
    result = subprocess.run(
        [make, "-s", "console-if-node"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert "no Node/npm" in lines[0] and "make console" in lines[0]


def test_the_first_load_is_under_300_kb_gzipped_and_the_editor_loads_lazily() -> None:
    index = (CONSOLE_DIST / "index.html").read_text(encoding="utf-8")
    # what the page loads before anything is opened: its entry scripts and their preloads
    first = re.findall(r'(?:src|href)="/console/(assets/[^"]+\.js)"', index)
    assert first, index
    sizes = {name: len(gzip.compress((CONSOLE_DIST / name).read_bytes())) for name in first}
    assert sum(sizes.values()) < 300_000, sizes
    editor = [p.name for p in (CONSOLE_DIST / "assets").glob("CodeEditor-*.js")]
    assert len(editor) == 1, "the code editor is its own chunk, loaded when the editor opens"
    assert not any("CodeEditor" in name for name in first)


def test_the_pictures_the_readme_shows_are_there() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme)
    assert {"docs/screenshots/run.png", "docs/screenshots/experiment.png"} <= set(pictures)
    for picture in pictures:
        data = (ROOT / picture).read_bytes()
        assert data.startswith(b"\x89PNG"), picture
