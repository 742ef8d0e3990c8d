"""The console in a real browser: Debian's Chromium, driven by Python Playwright (never a
downloaded browser), against a real ``rollgraph serve`` with product-video v3.2 and v3.3
applied (prod on v3.2). A viewer sees no mutating control; an admin promotes and rolls back in
one click each, seeing what will change and the audit entry made; the diff of v3.2 and v3.3
marks the added nodes. Screenshots of each view go to ``var/test-artifacts/console/``; the
time to lay out and draw a 200-node graph is printed (and written there), never asserted."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from tests.console import ROOT
from tests.console_browser import ARTIFACTS, console_server, shot, sign_in

pytestmark = pytest.mark.slow

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)
EXAMPLES = ROOT / "examples" / "product-video"
BIG = 200  # nodes of the graph whose drawing time is measured


def big_definition(n: int) -> str:
    """``n`` template nodes in a binary tree, each reading its parent's text."""
    lines = ["name: big-graph", "version: v1", "inputs:", "  topic: text", "nodes:"]
    lines += ["  n0:", "    uses: template", '    with: {text: "${inputs.topic}"}']
    for i in range(1, n):
        lines += [
            f"  n{i}:",
            "    uses: template",
            f'    with: {{text: "${{n{(i - 1) // 2}.text}} {i}"}}',
        ]
    lines += ["outputs:"] + [f'  o{i}: "${{n{i}.text}}"' for i in range(n // 2, n)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[dict[str, str]]:
    db = tmp_path_factory.mktemp("console-e2e") / "rollgraph.db"
    with console_server(serve, db, ADMIN_KEY) as (url, api):
        sources = [(EXAMPLES / f).read_text() for f in ("v3.2.yaml", "v3.3.yaml")]
        for source in [*sources, big_definition(BIG)]:
            assert api.post("/v1/workflows", json={"source": source}).status_code == 201
        moved = api.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.2"})
        assert moved.status_code == 200, moved.text
        rollout = {"version": "v3.3", "percent": 10}
        assert api.put("/v1/workflows/product-video/rollouts/prod", json=rollout).is_success
        viewer = api.post("/v1/keys", json={"name": "watcher", "role": "viewer"}).json()["key"]
        yield {"url": url, "viewer": viewer}


def prod_version(url: str) -> str:
    labels = httpx.get(
        f"{url}/v1/workflows/product-video/labels",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    return str(next(label["version"] for label in labels if label["name"] == "prod"))


def test_a_viewer_signs_in_and_sees_no_mutating_control(page: Any, server: dict[str, str]) -> None:
    url = server["url"]
    page.goto(url + "/")  # redirected to the console, which asks for a key
    page.get_by_label("API key").wait_for()
    shot(page, "sign-in")
    page.get_by_label("API key").fill("rg_wrongkey_" + "x" * 40)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="unknown or revoked").wait_for()
    # Keyboard only: the key field is the first stop, Enter submits.
    page.goto(url + "/console/workflows")
    page.get_by_label("API key").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.keyboard.type(server["viewer"])
    page.keyboard.press("Enter")
    page.get_by_test_id("who").wait_for()
    assert "watcher" in page.get_by_test_id("who").inner_text()
    row = page.locator("tr[data-workflow='product-video']")
    row.wait_for()
    assert "prod → v3.2 (rollout: v3.2 90 % · v3.3 10 %)" in row.inner_text()
    shot(page, "workflows")
    # The key is in this tab's session storage, never a cookie.
    assert page.context.cookies() == []
    stored = page.evaluate("sessionStorage.getItem('rollgraph.session')")
    assert json.loads(stored)["role"] == "viewer"
    page.get_by_role("link", name="product-video").click()
    page.locator("tr[data-label='prod']").wait_for()
    assert page.get_by_role("button", name=re.compile("Promote|Roll back")).count() == 0
    assert page.get_by_role("columnheader", name="Actions").count() == 0
    shot(page, "workflow-viewer")


def test_an_admin_promotes_and_rolls_back_in_one_click_each(
    page: Any, server: dict[str, str]
) -> None:
    from playwright.sync_api import expect

    url = server["url"]
    sign_in(page, url, ADMIN_KEY, "/console/workflows/product-video")
    row = page.locator("tr[data-label='prod']")
    row.wait_for()
    assert row.locator(".label-version").inner_text() == "v3.2"
    row.get_by_label("Promote prod to").select_option("v3.3")
    # Escape cancels, focus starts on Cancel: nothing moves by accident.
    row.get_by_role("button", name="Promote…").click()
    assert page.evaluate("document.activeElement.textContent") == "Cancel"
    page.keyboard.press("Escape")
    assert page.get_by_role("dialog").count() == 0
    assert prod_version(url) == "v3.2"
    row.get_by_role("button", name="Promote…").click()
    dialog = page.get_by_role("dialog")
    assert "moves from v3.2 to v3.3" in dialog.inner_text()
    shot(page, "promote-confirm")
    dialog.get_by_role("button", name="Promote", exact=True).click()
    audit = row.locator(".audit-entry")
    audit.filter(has_text="label.promote").wait_for()
    assert "product-video:prod" in audit.inner_text()
    expect(row.locator(".label-version")).to_have_text("v3.3")
    assert prod_version(url) == "v3.3"
    shot(page, "promoted")

    row.get_by_role("button", name="Roll back…").click()
    dialog = page.get_by_role("dialog")
    assert "moves from v3.3 to v3.2" in dialog.inner_text()
    dialog.get_by_role("button", name="Roll back", exact=True).click()
    audit.filter(has_text="label.rollback").wait_for()
    expect(row.locator(".label-version")).to_have_text("v3.2")
    assert prod_version(url) == "v3.2"
    shot(page, "rolled-back")


def test_the_diff_of_v32_and_v33_marks_the_added_nodes(page: Any, server: dict[str, str]) -> None:
    url = server["url"]
    diff = httpx.get(
        f"{url}/v1/workflows/product-video/diff",
        params={"a": "v3.2", "b": "v3.3"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    assert set(diff["nodes_added"]) == {"safety", "music"}
    sign_in(page, url, server["viewer"], "/console/workflows/product-video/diff?a=v3.2&b=v3.3")
    after = page.get_by_role("region", name="v3.3 (after)")
    for node in diff["nodes_added"]:
        card = after.locator(f".step[data-node='{node}']")
        card.wait_for()
        assert card.get_attribute("data-change") == "added"
        assert "added" in card.inner_text()  # in words, not colour alone
        # The older side shows only its outline, at the same place; the summary lists it.
        ghost = page.get_by_role("region", name="v3.2 (before)").locator(
            f".step[data-node='{node}']"
        )
        assert ghost.get_attribute("data-ghost") == "true"
        assert "not in this version" in ghost.inner_text()
        assert "added" in page.locator(f"ul.changes li[data-node='{node}']").inner_text()
    for node in diff["nodes_changed"]:
        assert after.locator(f".step[data-node='{node}']").get_attribute("data-change") == "changed"
    unified = page.get_by_label("Unified YAML diff")
    assert page.locator("pre.unified .line.add").count() > 0
    assert "+++" in unified.inner_text()
    shot(page, "diff")


def test_a_version_shows_graph_digest_labels_and_yaml(page: Any, server: dict[str, str]) -> None:
    url = server["url"]
    sign_in(page, url, server["viewer"], "/console/workflows/product-video/versions/v3.2")
    digest = page.get_by_test_id("digest")
    digest.wait_for()
    version = httpx.get(
        f"{url}/v1/workflows/product-video/versions/v3.2",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    assert digest.inner_text() == version["digest"]
    assert page.get_by_test_id("labels").inner_text() == "prod"
    graph = page.get_by_role("group", name="Graph of product-video v3.2")
    graph.locator(".step").first.wait_for()
    assert graph.locator(".step").count() == 4
    assert "sim/video-fast" in graph.locator(".step[data-node='video']").inner_text()
    assert graph.locator(".react-flow__edge-text").filter(has_text="video").count() >= 1
    assert "name: product-video" in page.get_by_label("YAML definition").inner_text()
    # The fixture's promotion of prod to v3.2 is in the label history, by its actor.
    history = page.get_by_test_id("label-history").inner_text()
    assert "prod" in history and "→ v3.2" in history and "bootstrap-admin" in history
    shot(page, "version")


def test_errors_and_unknown_routes_are_shown(page: Any, server: dict[str, str]) -> None:
    url = server["url"]
    sign_in(page, url, server["viewer"], "/console/workflows/nope")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "404" in alert.inner_text()
    page.goto(url + "/console/no/such/view")
    assert "Nothing at" in page.get_by_role("alert").inner_text()
    shot(page, "error")


def test_a_200_node_graph_is_laid_out_and_drawn(page: Any, server: dict[str, str]) -> None:
    url = server["url"]
    sign_in(page, url, server["viewer"], "/console/workflows/big-graph/versions/v1")
    drawn = page.locator(".timed-graph[data-drawn-ms]")
    drawn.wait_for(timeout=60_000)
    ms = float(drawn.get_attribute("data-drawn-ms"))
    layout_ms = float(drawn.get_attribute("data-layout-ms"))
    rendered = page.locator(".react-flow__node").count()
    assert rendered > 0
    shot(page, "graph-200")
    figure = {
        "nodes": BIG,
        "layout_and_draw_ms": round(ms, 1),
        "of_which_layout_ms": layout_ms,
        "nodes_in_dom": rendered,
    }
    (ARTIFACTS / "graph-200.json").write_text(json.dumps(figure) + "\n")
    print(json.dumps(figure))


@pytest.mark.parametrize(("path", "ready"), [("/docs", ".swagger-ui .info"), ("/redoc", "h1")])
def test_the_api_docs_render_without_the_internet(
    page: Any, server: dict[str, str], path: str, ready: str
) -> None:
    url = server["url"]
    outside: list[tuple[str, str]] = []
    answered: list[str] = []

    def offline(route: Any) -> None:  # this machine without the internet
        outside.append((route.request.resource_type, route.request.url))
        route.abort()

    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), offline)
    page.on("response", lambda response: answered.append(response.url))
    page.goto(url + path)
    page.locator(ready).first.wait_for()
    assert "rollgraph" in page.locator(ready).first.inner_text()
    # Everything the page needs came from the server; nothing reached another host (ReDoc's
    # own logo, an image, is refused by the page's policy before it is fetched).
    assert all(u.startswith((url, "data:", "blob:")) for u in answered), answered
    assert all(kind == "image" for kind, _ in outside), outside
    shot(page, path.strip("/"))
