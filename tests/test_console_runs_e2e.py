"""The console's run views in a real browser (Debian's Chromium, Python Playwright) against a
real ``rollgraph serve`` whose simulated models take their realistic time (twice it, so a run
lasts long enough to be watched): a run's steps move on its graph while it runs, the runs list
filters by workflow and status, and a run stopped by its budget is resumed by a runner with a
raised budget, its completed step coming from the step cache."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.console import ROOT, need_chromium
from tests.console_browser import ARTIFACTS, shot, sign_in

pytestmark = pytest.mark.slow

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)
WAIT_MS = 90_000
SEEN_SUCCEEDED = """() => {
  window.__succeeded = {};
  new MutationObserver(() => {
    for (const el of document.querySelectorAll(".step[data-state='succeeded']")) {
      const node = el.getAttribute("data-node");
      if (!(node in window.__succeeded)) window.__succeeded[node] = Date.now();
    }
  }).observe(document.body, { subtree: true, childList: true, attributes: true });
}"""  # a run of product-video v3.2 at twice the simulated time: about 15 s


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[dict[str, Any]]:
    need_chromium()
    db = tmp_path_factory.mktemp("console-runs") / "rollgraph.db"
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{db}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": ADMIN_KEY,
        "ROLLGRAPH_SIM_TIME_SCALE": "2",
        "ROLLGRAPH_PROGRESS_INTERVAL_S": "0.2",
    }
    with (
        serve(env) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as api,
    ):
        source = (ROOT / "examples" / "product-video" / "v3.2.yaml").read_text()
        assert api.post("/v1/workflows", json={"source": source}).status_code == 201
        assert api.put("/v1/workflows/product-video/labels/prod", json={"version": "v3.2"})
        keys = {
            role: api.post("/v1/keys", json={"name": f"a-{role}", "role": role}).json()["key"]
            for role in ("viewer", "runner")
        }
        yield {"url": url, "api": api, **keys}


def start(api: httpx.Client, **extra: Any) -> str:
    body = {"workflow": "product-video", "input": {"prompt": "a lamp"}, "mode": "async", **extra}
    answer = api.post("/v1/run", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


def ended(api: httpx.Client, page: Any, run_id: str) -> str:
    """The run's status once it is neither queued nor running."""
    for _ in range(900):
        status = str(api.get(f"/v1/runs/{run_id}").json()["status"])
        if status not in ("queued", "running"):
            return status
        page.wait_for_timeout(100)
    raise AssertionError(f"run {run_id} still {status}")


def test_a_running_run_shows_its_steps_move_on_the_graph_until_it_ends(
    page: Any, server: dict[str, Any]
) -> None:
    run_id = start(server["api"])
    sign_in(page, server["url"], server["viewer"], f"/console/runs/{run_id}")
    graph = page.get_by_role("group", name=f"Steps of run {run_id}")
    # When each step is first drawn succeeded, by the browser's clock (the server's: one machine)
    page.evaluate(SEEN_SUCCEEDED)
    # While it runs: a step is drawn running (the video takes seconds), the view says it is live.
    graph.locator(".step[data-state='running']").first.wait_for(timeout=WAIT_MS)
    assert "live, as each step changes" in page.get_by_test_id("run-status").inner_text()
    shot(page, "run-live")
    page.locator("[data-testid='run-status'][data-status='succeeded']").wait_for(timeout=WAIT_MS)
    # Ended: every node succeeded on the graph and in the table, with figures, outputs shown.
    graph.locator(".step[data-state='succeeded']").nth(3).wait_for()
    assert graph.locator(".step").count() == 4
    assert "succeeded" in graph.locator(".step[data-node='video']").inner_text()
    rows = page.get_by_test_id("steps").locator("tbody tr")
    assert rows.count() == 4
    assert page.get_by_test_id("tally").inner_text() == "4 succeeded"
    assert "live" not in page.get_by_test_id("run-status").inner_text()
    # how long after a step ended its new state was on the screen: measured, never asserted
    seen = page.evaluate("window.__succeeded")
    trace = server["api"].get(f"/v1/runs/{run_id}").json()["trace"]
    delays = {
        s["node"]: seen[s["node"]] / 1000 - datetime.fromisoformat(s["ended_at"]).timestamp()
        for s in trace["steps"]
        if s["node"] in seen and s.get("ended_at")
    }
    (ARTIFACTS / "run-update-delays.json").write_text(json.dumps(delays, indent=2))
    # the trace as a waterfall; a step's panel opens from its row
    waterfall = page.get_by_test_id("waterfall")
    assert waterfall.locator("li").count() == 4
    waterfall.locator("li[data-node='video'] button").click()
    panel = page.get_by_test_id("step-panel")
    assert "video" in panel.inner_text() and "$" in panel.inner_text()
    assert "media_seconds" in panel.inner_text()  # its usage
    assert page.get_by_role("button", name="Run again…").count() == 0  # a viewer
    assert "$" in page.get_by_test_id("run-cost").inner_text()
    assert '"video"' in page.get_by_label("Run outputs", exact=True).inner_text()
    assert page.get_by_role("button", name="Resume…").count() == 0  # a viewer, a success
    shot(page, "run", readme=True)


def test_the_runs_list_filters_by_workflow_and_status(page: Any, server: dict[str, Any]) -> None:
    stopped = start(server["api"], budget={"max_cost_usd": 0.01})
    assert ended(server["api"], page, stopped) == "budget_exceeded"
    sign_in(page, server["url"], server["viewer"], "/console/runs")
    page.get_by_test_id("runs").wait_for()
    page.get_by_label("Workflow").fill("product-video")
    page.get_by_label("Status").select_option("budget_exceeded")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/console/runs?workflow=product-video&status=budget_exceeded")
    page.locator(f"tr[data-run='{stopped}']").wait_for()
    assert page.locator("tr[data-run]").count() >= 1
    assert all("budget_exceeded" in row.inner_text() for row in page.locator("tr[data-run]").all())
    page.get_by_label("Workflow").fill("no-such-workflow")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("status").filter(has_text="No runs of no-such-workflow").wait_for()
    shot(page, "runs")


def test_the_runs_list_filters_by_user_and_pages_back(page: Any, server: dict[str, Any]) -> None:
    api = server["api"]
    mine = [start(api, user_id="ada", budget={"max_cost_usd": 0.01}) for _ in range(2)]
    for run_id in mine:
        ended(api, page, run_id)
    sign_in(page, server["url"], server["viewer"], "/console/runs?limit=1")
    page.get_by_label("Workflow").fill("product-video")
    page.get_by_label("User").fill("ada")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/console/runs?workflow=product-video&user_id=ada&limit=1")
    page.locator(f"tr[data-run='{mine[1]}']").wait_for()  # the newest of hers, one a page
    assert page.locator("tr[data-run]").count() == 1
    page.get_by_role("link", name="Older runs").click()
    page.locator(f"tr[data-run='{mine[0]}']").wait_for()
    assert "until=" in page.url
    page.get_by_role("link", name="Newest").click()
    page.locator(f"tr[data-run='{mine[1]}']").wait_for()


def test_a_runner_resumes_a_run_its_budget_stopped_with_a_raised_budget(
    page: Any, server: dict[str, Any]
) -> None:
    api = server["api"]
    run_id = start(api, budget={"max_cost_usd": 0.01})  # the prompt fits, the video does not
    assert ended(api, page, run_id) == "budget_exceeded"
    sign_in(page, server["url"], server["runner"], f"/console/runs/{run_id}")
    assert "budget" in page.get_by_test_id("run-error").inner_text()
    page.get_by_role("button", name="Resume…").click()
    dialog = page.get_by_role("dialog")
    assert "attempt 2" in dialog.inner_text() and "step cache" in dialog.inner_text()
    dialog.get_by_label("Max cost for this attempt (USD, optional)").fill("-1")
    assert dialog.get_by_role("button", name="Resume").is_disabled()
    dialog.get_by_label("Max cost for this attempt (USD, optional)").fill("5")
    dialog.get_by_role("button", name="Resume").click()
    page.locator("[data-testid='run-status'][data-status='succeeded']").wait_for(timeout=WAIT_MS)
    tally = page.get_by_test_id("tally").inner_text()
    assert "cached (not billed)" in tally, tally  # the prompt came from the step cache
    run = api.get(f"/v1/runs/{run_id}").json()
    assert run["attempt"] == 2
    assert [s["state"] for s in run["steps"] if s["node"] == "enhance"] == ["cached"]
    page.get_by_role("link", name="trace 1").click()
    page.locator("[data-testid='run-status'][data-status='succeeded']").wait_for()
    assert "2 of 2" not in page.locator("dl.facts").inner_text()
    shot(page, "run-resumed")
    # run again: the same input on the same version, a new run opened
    page.get_by_role("button", name="Run again…").click()
    dialog = page.get_by_role("dialog")
    assert "a lamp" in dialog.inner_text() and "pinned" in dialog.inner_text()
    dialog.get_by_role("button", name="Run again").click()
    page.wait_for_url(lambda url: "/console/runs/" in url and run_id not in url)
    again = page.url.rsplit("/", 1)[-1]
    first = api.get(f"/v1/runs/{again}").json()
    assert (first["version"], first["input"]) == (run["version"], run["input"])
    assert first["reason"] == "pin"


def test_the_workflows_list_shows_each_workflow_s_last_hour(
    page: Any, server: dict[str, Any]
) -> None:
    api = server["api"]
    stopped = start(api, budget={"max_cost_usd": 0.01})
    ended(api, page, stopped)
    (hour,) = api.get("/v1/runs/activity").json()
    sign_in(page, server["url"], server["viewer"], "/console/workflows")
    row = page.locator("tr[data-workflow='product-video']")
    row.wait_for()
    assert row.get_by_test_id("hour-runs").inner_text() == str(hour["runs"])
    errors = row.get_by_test_id("hour-errors").inner_text()
    assert f"({hour['failed']} of {hour['ended']})" in errors and "%" in errors
    assert row.get_by_test_id("hour-cost").inner_text().startswith("$")
