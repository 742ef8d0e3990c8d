"""The console's editor in a real browser (Debian's Chromium, Python Playwright) against a real
``rollgraph serve``: starting from a stored version, a typo shows its problem at its line (in the
list and in the editor's gutter) with its "did you mean", the fix redraws the graph and shows
the diff, and an admin applies it as a new version; a viewer checks but cannot apply."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from tests.console import ROOT
from tests.console_browser import console_server, shot, sign_in

pytestmark = pytest.mark.slow

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)
SOURCE = (ROOT / "examples" / "product-video" / "v3.2.yaml").read_text()
TYPO = SOURCE.replace("version: v3.2", "version: v3.9").replace(
    "uses: video.generate", "uses: video.generat"
)
FIXED = TYPO.replace("uses: video.generat", "uses: video.generate").replace(
    "seconds: 8", "seconds: 10"
)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[dict[str, Any]]:
    db = tmp_path_factory.mktemp("console-editor") / "rollgraph.db"
    with console_server(serve, db, ADMIN_KEY) as (url, api):
        assert api.post("/v1/workflows", json={"source": SOURCE}).status_code == 201
        viewer = api.post("/v1/keys", json={"name": "a-viewer", "role": "viewer"}).json()["key"]
        yield {"url": url, "api": api, "viewer": viewer}


def replace_text(page: Any, text: str) -> None:
    """Select everything in the editor and put ``text`` in its place, as a paste would (typed
    key by key, the editor's auto-indent would reshape the YAML)."""
    page.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


def test_a_typo_shows_at_its_line_and_the_fix_is_applied_as_a_new_version(
    page: Any, server: dict[str, Any]
) -> None:
    sign_in(page, server["url"], ADMIN_KEY, "/console/workflows/product-video/versions/v3.2")
    page.get_by_role("link", name="Write a new version from v3.2").click()
    page.locator(".cm-content").wait_for()
    # the untouched text is v3.2 itself
    page.get_by_test_id("verdict").filter(has_text="identical to v3.2").wait_for()
    replace_text(page, TYPO)
    line = TYPO.splitlines().index("    uses: video.generat") + 1
    problem = page.locator(f"[data-testid='problems'] li[data-line='{line}']")
    problem.wait_for()
    assert "did you mean video.generate?" in problem.inner_text()
    assert f"line {line}" in problem.inner_text()
    assert page.locator(".cm-lint-marker-error").count() >= 1  # and in the editor's gutter
    assert page.get_by_role("button", name="Apply as a new version…").is_disabled()
    shot(page, "editor-problem")

    replace_text(page, FIXED)
    page.get_by_test_id("verdict").filter(has_text="applying stores it as v3.9").wait_for()
    assert page.locator("[data-testid='problems'] li.error").count() == 0
    graph = page.get_by_role("group", name="Graph of the draft of product-video")
    assert graph.locator(".react-flow__node").count() == 4
    added = page.get_by_label("Unified YAML diff").locator(".add").all_inner_texts()
    assert any("seconds: 10" in line for line in added), added
    page.get_by_role("button", name="Apply as a new version…").click()
    dialog = page.get_by_role("dialog")
    assert "v3.9" in dialog.inner_text() and "No label moves" in dialog.inner_text()
    dialog.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name="Open product-video v3.9").wait_for()
    stored = server["api"].get("/v1/workflows/product-video/versions/v3.9").json()
    assert stored["source"] == FIXED
    shot(page, "editor-applied")


def test_a_viewer_checks_a_draft_but_cannot_apply_it(page: Any, server: dict[str, Any]) -> None:
    sign_in(page, server["url"], server["viewer"], "/console/workflows/product-video/edit")
    page.locator(".cm-content").wait_for()
    page.get_by_test_id("verdict").wait_for()
    replace_text(page, TYPO)
    page.locator("[data-testid='problems'] li.error").first.wait_for()
    assert page.get_by_role("button", name="Apply as a new version…").count() == 0
