"""What the console's browser tests share: Debian's Chromium driven by Python Playwright (never a
downloaded browser), a page per test at a fixed size, signing in with a key, and screenshots in
``var/test-artifacts/console/``. ``tests/conftest.py`` offers ``browser`` and ``page`` as
fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.console import ROOT, need_chromium

__all__ = ["ARTIFACTS", "README_SHOTS", "browser", "page", "shot", "sign_in"]

ARTIFACTS = ROOT / "var" / "test-artifacts" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = p.chromium.launch(
            executable_path=str(need_chromium()), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Any, url: str, key: str, start: str = "/console/workflows") -> None:
    page.goto(url + start)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_test_id("who").wait_for()


# The README's pictures are these tests' screenshots: `ROLLGRAPH_REFRESH_SCREENSHOTS=1` writes
# them there too (a run that changes nothing the README shows needs no new pictures).
README_SHOTS = ROOT / "docs" / "screenshots"


def shot(page: Any, name: str, *, readme: bool = False) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if readme and os.environ.get("ROLLGRAPH_REFRESH_SCREENSHOTS") == "1":
        page.screenshot(path=str(README_SHOTS / f"{name}.png"), full_page=True)
