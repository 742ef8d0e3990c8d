"""The console's rollout view in a real browser (Debian's Chromium, Python Playwright) against
a real ``rollgraph serve``: an admin's candidates are checked as the API checks them before
anything is sent, set after a confirmation, audited; anyone can ask which version a user would
get and why, and gets the API's answer without a run; a viewer has no control."""

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


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[dict[str, Any]]:
    db = tmp_path_factory.mktemp("console-rollout") / "rollgraph.db"
    with console_server(serve, db, ADMIN_KEY, ROLLGRAPH_SIM_TIME_SCALE="0") as (url, api):
        for version in ("v3.2", "v3.3"):
            source = (ROOT / "examples" / "product-video" / f"{version}.yaml").read_text()
            assert api.post("/v1/workflows", json={"source": source}).status_code == 201
        assert api.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.2"})
        viewer = api.post("/v1/keys", json={"name": "a-viewer", "role": "viewer"}).json()["key"]
        yield {"url": url, "api": api, "viewer": viewer}


def test_an_admin_sets_a_rollout_checked_before_it_is_sent_and_audited(
    page: Any, server: dict[str, Any]
) -> None:
    sign_in(page, server["url"], ADMIN_KEY, "/console/workflows/product-video")
    page.get_by_role("link", name="Rollout of prod").click()
    page.get_by_test_id("shares").wait_for()
    assert page.get_by_test_id("shares").inner_text() == "v3.2 100 %"
    page.get_by_role("button", name="Add candidate").click()
    page.get_by_label("Candidate 1").select_option("v3.3")
    page.get_by_label("percent", exact=True).fill("150")
    fix = page.get_by_role("alert", name="What to fix")
    assert "from 0 to 100" in fix.inner_text()
    assert page.get_by_role("button", name="Set rollout…").is_disabled()
    page.get_by_label("percent", exact=True).fill("10")
    assert "v3.2 keeps 90 %" in page.get_by_text("keeps").inner_text()
    page.get_by_role("button", name="Set rollout…").click()
    dialog = page.get_by_role("dialog")
    assert "v3.3 gets 10 %" in dialog.inner_text() and "v3.2 keeps 90 %" in dialog.inner_text()
    dialog.get_by_role("button", name="Set rollout").click()
    page.get_by_test_id("shares").filter(has_text="v3.3 10 %").wait_for()
    page.get_by_text("rollout.set").wait_for()  # still shown once the view has reloaded
    rollout = server["api"].get("/v1/workflows/product-video/rollouts/prod").json()
    assert [(c["version"], c["percent"]) for c in rollout["candidates"]] == [("v3.3", 10.0)]
    shot(page, "rollout")


def test_anyone_asks_which_version_a_user_gets_and_a_viewer_changes_nothing(
    page: Any, server: dict[str, Any]
) -> None:
    api = server["api"]
    api.put("/v1/workflows/product-video/rollouts/prod", json={"version": "v3.3", "percent": 50})
    sign_in(page, server["url"], server["viewer"], "/console/workflows/product-video/rollouts/prod")
    page.get_by_test_id("shares").wait_for()
    assert page.get_by_role("button", name="Set rollout…").count() == 0
    runs_before = len(api.get("/v1/runs").json())
    for user in ("alice", "bob", "carol"):
        expected = api.get(
            "/v1/workflows/product-video/labels/prod/assignment", params={"user_id": user}
        ).json()
        page.get_by_label("User id").fill(user)
        page.get_by_role("button", name="Show").click()
        answer = page.get_by_test_id("assignment").filter(has_text=user)
        answer.wait_for()
        assert page.get_by_test_id("assigned-version").inner_text() == expected["version"]
        assert expected["explanation"] in answer.inner_text()
    assert len(api.get("/v1/runs").json()) == runs_before  # a preview makes no run


def test_an_admin_shadows_a_version_and_reads_the_paired_comparison(
    page: Any, server: dict[str, Any]
) -> None:
    api = server["api"]
    api.put("/v1/workflows/product-video/rollouts/prod", json={"candidates": []})
    sign_in(page, server["url"], ADMIN_KEY, "/console/workflows/product-video/rollouts/prod")
    state = page.get_by_test_id("shadow-state")
    state.filter(has_text="Not shadowing").wait_for()
    page.get_by_label("Shadow version").select_option("v3.3")
    page.get_by_label("on percent of users").fill("100")
    page.get_by_label("max $ an hour").fill("50")
    page.get_by_role("button", name="Start shadow…").click()
    dialog = page.get_by_role("dialog")
    assert "never returned" in dialog.inner_text()
    dialog.get_by_role("button", name="Start shadow").click()
    page.get_by_text("shadow.start").wait_for()
    state.filter(has_text="Shadowing v3.3 on 100 %").wait_for()
    body = {"workflow": "product-video", "input": {"prompt": "a lamp"}}
    for i in range(6):
        answer = api.post("/v1/run", json={**body, "user_id": f"u{i}"})
        assert answer.status_code == 200 and answer.json()["version"] == "v3.2", answer.text
    comparison = "/v1/workflows/product-video/labels/prod/shadow/comparison"
    for _ in range(300):  # shadow runs are stored after the answers, in batches
        if api.get(comparison).json()["pairs"] >= 6:
            break
        page.wait_for_timeout(100)
    page.reload()
    table = page.get_by_test_id("shadow-comparison")
    table.wait_for()
    metrics = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.metric)")
    assert {"success", "latency_s", "cost_usd"} <= set(metrics), metrics
    assert "paired requests" in page.get_by_test_id("shadow-verdict").inner_text()
    shot(page, "shadow")
    page.get_by_role("button", name="Stop shadow…").click()
    page.get_by_role("dialog").get_by_role("button", name="Stop shadow").click()
    state.filter(has_text="Not shadowing (last: v3.3").wait_for()
