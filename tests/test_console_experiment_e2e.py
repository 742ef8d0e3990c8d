"""The console's experiment views in a real browser (Debian's Chromium, Python Playwright)
against a real ``rollgraph serve``: an experiment with traffic and looks reads as its results
say (the decision and its reasons, per metric and arm the figures, a chart per candidate and
metric of the effect over the looks with its threshold, the decision log); a viewer has no
control, an admin stops it and sees the audit entry."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from tests.console import need_chromium
from tests.console_browser import shot, sign_in
from tests.fixtures import GREET, GREET_LARGE

pytestmark = pytest.mark.slow

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)
V2 = GREET_LARGE + "targets: {p95_latency_s: 30, error_ratio: 0.5}\n"
EXPERIMENT = {
    "workflow": "greet",
    "candidates": [{"version": "v2", "percent": 50}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "guardrails": [{"name": "success", "direction": "increase", "margin": 0.01}],
    "min_runs_per_arm": 20,
}


def traffic(api: httpx.Client, users: range) -> None:
    """One run per user; v2 converts on 6 users in 10, v1 on 3 (by the user's number, so the
    split alone decides which rate a user gets)."""
    for i in users:
        run = api.post("/v1/run", json={"workflow": "greet", "input": {"prompt": "hi"},
                                        "user_id": f"user-{i}"})  # fmt: skip
        assert run.status_code == 200, run.text
        body = run.json()
        converted = i % 10 < (6 if body["version"] == "v2" else 3)
        outcome = api.post(f"/v1/runs/{body['run_id']}/outcome", json={"converted": converted})
        assert outcome.status_code in (200, 201, 202), outcome.text


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[dict[str, Any]]:
    need_chromium()
    db = tmp_path_factory.mktemp("console-experiment") / "rollgraph.db"
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{db}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": ADMIN_KEY,
        "ROLLGRAPH_SIM_TIME_SCALE": "0",
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",  # the test looks when it wants, by evaluate
    }
    with (
        serve(env) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as api,
    ):
        assert api.post("/v1/workflows", json={"source": GREET, "version": "v1"}).status_code == 201
        assert api.post("/v1/workflows", json={"source": V2, "version": "v2"}).status_code == 201
        assert api.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).status_code == 200
        started = api.post("/v1/experiments", json=EXPERIMENT)
        assert started.status_code == 201, started.text
        ident = started.json()["id"]
        for batch in range(3):
            traffic(api, range(batch * 100, (batch + 1) * 100))
            assert api.post(f"/v1/experiments/{ident}/evaluate").status_code == 200
        viewer = api.post("/v1/keys", json={"name": "a-viewer", "role": "viewer"}).json()["key"]
        yield {"url": url, "api": api, "viewer": viewer, "id": ident}


def test_a_viewer_reads_the_decision_the_figures_and_the_effect_over_time(
    page: Any, server: dict[str, Any]
) -> None:
    api, ident = server["api"], server["id"]
    results = api.get(f"/v1/experiments/{ident}/results").json()
    assert len(api.get(f"/v1/experiments/{ident}/looks").json()) == 3
    sign_in(page, server["url"], server["viewer"], "/console/experiments")
    page.get_by_role("link", name=results["experiment"]["name"]).click()
    page.get_by_test_id("decision").wait_for()
    assert page.get_by_test_id("decision").inner_text() == results["action"]
    reasons = page.get_by_test_id("reasons").inner_text()
    assert results["reasons"][0]["message"] in reasons
    assert "live" in page.get_by_test_id("experiment-status").inner_text()
    # per metric and arm: the candidate's row carries its effect and interval
    row = page.locator("[data-testid='metrics'] tr[data-metric='converted'][data-arm='v2']")
    figures = next(r for r in results["metrics"] if (r["arm"], r["metric"]) == ("v2", "converted"))
    assert str(figures["n"]) in row.inner_text() and str(figures["runs"]) in row.inner_text()
    assert " to " in row.inner_text()  # the interval
    # a chart per candidate and metric, its gist in words, over the three looks
    charts = page.get_by_test_id("effect-chart")
    assert charts.count() == 2
    chart = page.get_by_role("img", name="v2 vs v1, converted", exact=False)
    gist = chart.get_attribute("aria-label") or ""
    assert "at the last of 3 looks" in gist
    # the relative mde of 10 % read against v1's rate, in points like the decision's reasons
    v1 = next(r for r in results["metrics"] if (r["arm"], r["metric"]) == ("v1", "converted"))
    mde_points = 0.1 * v1["mean"] * 100
    assert f"minimum detectable effect +{float(f'{mde_points:.3g}'):g} pts" in gist, gist
    assert chart.locator("polyline.effect").count() == 1
    assert chart.locator("line.threshold").count() == 1
    assert page.get_by_test_id("decisions").locator("tbody tr").count() >= 1
    # each arm against its version's targets: v2 declares two, v1 none
    latency = page.locator(
        "[data-testid='targets'] tr[data-version='v2'][data-figure='p95_latency_s']"
    )
    assert "✓ met" in latency.inner_text()
    v1 = page.locator("[data-testid='targets'] tr[data-version='v1']").first.inner_text()
    assert "none" in v1
    assert page.get_by_role("button", name="Stop…").count() == 0  # a viewer changes nothing
    shot(page, "experiment", readme=True)


def test_an_admin_stops_it_after_saying_what_changes_and_sees_the_audit_entry(
    page: Any, server: dict[str, Any]
) -> None:
    ident = server["id"]
    sign_in(page, server["url"], ADMIN_KEY, f"/console/experiments/{ident}")
    page.get_by_role("button", name="Stop…").click()
    dialog = page.get_by_role("dialog")
    assert "go to 0 %" in dialog.inner_text()
    dialog.get_by_role("button", name="Stop").click()
    page.get_by_text("experiment.stop").wait_for()
    page.locator("[data-testid='experiment-status']", has_text="stopped").wait_for()
    assert server["api"].get(f"/v1/experiments/{ident}").json()["status"] == "stopped"
    assert page.get_by_role("button", name="Stop…").count() == 0
    shot(page, "experiment-stopped")


def test_an_admin_promotes_the_candidate_of_a_new_experiment(
    page: Any, server: dict[str, Any]
) -> None:
    api = server["api"]
    started = api.post("/v1/experiments", json=EXPERIMENT)  # the first one was stopped
    assert started.status_code == 201, started.text
    ident = started.json()["id"]
    sign_in(page, server["url"], ADMIN_KEY, f"/console/experiments/{ident}")
    page.get_by_role("button", name="Promote v2…").click()
    dialog = page.get_by_role("dialog")
    assert "moves from v1 to v2" in " ".join(dialog.inner_text().split())
    dialog.get_by_role("button", name="Promote v2").click()
    page.get_by_text("experiment.promote").wait_for()
    page.locator("[data-testid='experiment-status']", has_text="promoted").wait_for()
    labels = api.get("/v1/workflows/greet/labels").json()
    assert next(x["version"] for x in labels if x["name"] == "prod") == "v2"
