"""The console's operator views in a real browser (Debian's Chromium, Python Playwright) against
a real ``rollgraph serve``: the queue (its depth and wait with Redis, and plainly "no queue"
without), the keys (a new key shown once, signed in with, revoked after a confirmation) and the
audit log filtered by actor and kind."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from tests.console import ROOT, need_chromium
from tests.console_browser import shot, sign_in
from tests.fixtures import REDIS_URL

pytestmark = pytest.mark.slow

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)
Serve = Callable[..., AbstractContextManager[str]]


def seeded(api: httpx.Client) -> None:
    source = (ROOT / "examples" / "product-video" / "v3.2.yaml").read_text()
    assert api.post("/v1/workflows", json={"source": source}).status_code == 201
    assert api.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.2"})


def test_the_queue_shows_waiting_runs_with_redis_and_no_queue_without(
    page: Any, serve: Serve, tmp_path: Any, redis_prefix: str
) -> None:
    need_chromium()
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{tmp_path / 'rollgraph.db'}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": ADMIN_KEY,
        "REDIS_URL": REDIS_URL,
        "ROLLGRAPH_REDIS_PREFIX": redis_prefix,
    }
    with (
        serve(env) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api,
    ):
        seeded(api)
        body = {"workflow": "product-video", "input": {"prompt": "a lamp"}, "mode": "async"}
        for _ in range(3):  # no worker runs: they wait on the queue
            assert api.post("/v1/run", json=body).status_code == 202
        queue = api.get("/v1/queue").json()
        sign_in(page, url, ADMIN_KEY, "/console/queue")
        facts = page.get_by_test_id("queue")
        facts.wait_for()
        assert "Waiting" in facts.inner_text()
        assert str(queue["waiting"]) in facts.inner_text()
        assert "No dead letters." in page.inner_text("main")
        shot(page, "queue")


def test_keys_are_created_shown_once_used_and_revoked_and_the_audit_log_shows_it(
    page: Any, serve: Serve, tmp_path: Any
) -> None:
    need_chromium()
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{tmp_path / 'rollgraph.db'}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": ADMIN_KEY,
    }
    with serve(env) as url:
        sign_in(page, url, ADMIN_KEY, "/console/queue")
        assert "No run queue" in page.get_by_role("status").first.inner_text()
        page.get_by_role("link", name="Keys").click()
        page.get_by_label("Name").fill("dashboards")
        page.get_by_label("Role").select_option("viewer")
        page.get_by_role("button", name="Create key").click()
        key = page.get_by_test_id("new-key").inner_text()
        assert key.startswith("rg_")
        row = page.locator("[data-testid='keys'] tr[data-key='dashboards']")
        row.wait_for()
        assert key not in row.inner_text()  # listed by its prefix only
        # the new key works: a viewer sees no Keys link and no mutating control
        context = page.context.browser.new_context()
        other = context.new_page()
        sign_in(other, url, key)
        assert "viewer" in other.get_by_test_id("who").inner_text()
        assert other.get_by_role("link", name="Keys").count() == 0
        row.get_by_role("button", name="Revoke…").click()
        page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
        row.filter(has_text="revoked").wait_for()
        # revoked: its next request is refused and the console goes back to the sign-in
        other.goto(url + "/console/workflows")
        other.get_by_label("API key").wait_for()
        context.close()
        page.get_by_role("link", name="Audit").click()
        page.get_by_label("Target kind").select_option("api_key")
        page.get_by_role("button", name="Show").click()
        log = page.get_by_test_id("audit")
        log.locator("tr[data-action='key.revoke']").wait_for()
        actions = log.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.action)")
        assert actions[:2] == ["key.revoke", "key.create"], actions
        assert "target_kind=api_key" in page.url
        shot(page, "audit")
