"""The observability stack proven end to end: a real Prometheus (Debian's ``prometheus``, on a
free loopback port, with this test's configuration and the project's rules) scrapes a real
two-worker ``rollgraph serve`` on PostgreSQL while simulated users run workflows, report
outcomes and are split by a running experiment. Then:

* the counters in Prometheus equal the counts in the store (nothing lost, nothing counted
  twice, summed over both workers by multiprocess mode);
* every dashboard panel's query, with its variables filled with this test's workflow, version
  and experiment, returns data from that Prometheus, and so does every recording rule;
* the candidate-error alert, whose candidate fails about half its runs against a baseline that
  almost never fails, is pending or firing.

Prometheus cannot be faked here: the point is that what the dashboards and rules ask for is what
the server exports, in the shape the real query engine computes on. Without the binary the test
is skipped, and under ``CI=true`` (where ``.ci/run`` installs it) it fails.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from control_plane.store.db import create_db_engine
from tests.grafana import fill, load_dashboards, panel_queries
from tests.processes import free_port, stop, wait_ready

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "dashboards" / "prometheus" / "rules.yml"

# v1 retries its one model call (three attempts by default) and almost never fails; v2 gives the
# same call one attempt and a timeout near the simulated model's median latency, so about half
# of its runs fail: the candidate error ratio is far above the baseline's.
V1 = """
name: greet
version: v1
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
outputs:
  text: "${write.text}"
"""
V2 = """
name: greet
version: v2
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
    retry: {max_attempts: 1}
    timeout_s: 0.35
outputs:
  text: "${write.text}"
"""
EXPERIMENT: dict[str, Any] = {
    "workflow": "greet",
    "name": "greet-v2",
    "candidate": "v2",
    # The first step is held for an hour: the experiment is still running (and still has a
    # step ahead) when the dashboards are queried.
    "ramp": [{"percent": 50, "min_duration_s": 3600}, {"percent": 100}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "min_runs_per_arm": 20,
    "auto_rollback": False,
}
LOAD_S = 20.0
USERS_IN_FLIGHT = 8
# Prometheus evaluates $__rate_interval as at least four scrape intervals; a minute at a 1 s
# scrape covers the whole load, so each rate is an average over it rather than a tail of zeros.
RATE_INTERVAL = "1m"


def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        reason = "Prometheus is not installed (Debian package `prometheus`; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@contextmanager
def prometheus(target: str, workdir: Path) -> Iterator[str]:
    """A real Prometheus scraping ``target`` (host:port) every second and evaluating the
    project's rules every second; yields its URL once it is ready."""
    binary = _prometheus_binary()
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": "rollgraph", "static_configs": [{"targets": [target]}]},
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(
            proc,
            f"{url}/-/ready",
            timeout_s=30,
            what="prometheus",
            output=lambda: _tail(workdir / "prometheus.log"),
        )
        yield url
    finally:
        stop(proc, timeout_s=10)
        log.close()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    """An instant query; a PromQL error fails the test with Prometheus's own message."""
    answer = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=30)
    body = answer.json()
    assert body.get("status") == "success", f"{expr}\n -> {body.get('error', body)}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(prom: str, expr: str) -> float:
    result = query(prom, expr)
    assert len(result) == 1, f"{expr} -> {result}"
    return float(result[0]["value"][1])


def by(prom: str, expr: str, label: str) -> dict[str, float]:
    return {row["metric"][label]: float(row["value"][1]) for row in query(prom, expr)}


class Load:
    """Simulated users: sync runs (one in ten async), outcomes for the runs that succeeded, and
    a resume of every third failed run, from ``USERS_IN_FLIGHT`` threads for ``LOAD_S``."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.async_runs: list[str] = []
        self.errors: list[str] = []
        self.answered = 0
        self._lock = threading.Lock()

    def user(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            n = 0
            while time.monotonic() < until:
                n += 1
                body: dict[str, Any] = {
                    "workflow": "greet",
                    "input": {"prompt": f"a lamp, take {n}"},
                    "user_id": f"user-{seed}-{rng.randrange(10_000)}",
                }
                if rng.random() < 0.1:
                    body["mode"] = "async"
                answer = client.post("/v1/run", json=body)
                self._check(answer, 200, 202)
                if answer.status_code == 202:
                    with self._lock:
                        self.async_runs.append(answer.json()["run_id"])
                    continue
                run = answer.json()
                if run["status"] == "succeeded":
                    outcome = {"converted": rng.random() < 0.3}
                    self._check(client.post(f"/v1/runs/{run['run_id']}/outcome", json=outcome), 200)
                elif rng.random() < 1 / 3:
                    self._check(client.post(f"/v1/runs/{run['run_id']}/resume"), 200)

    def _check(self, answer: httpx.Response, *expected: int) -> None:
        with self._lock:
            self.answered += 1
            if answer.status_code not in expected:
                self.errors.append(f"{answer.request.url}: {answer.status_code} {answer.text}")

    def run(self, evaluate: Callable[[], None]) -> None:
        until = time.monotonic() + LOAD_S
        threads = [
            threading.Thread(target=self.user, args=(seed, until), daemon=True)
            for seed in range(USERS_IN_FLIGHT)
        ]
        for thread in threads:
            thread.start()
        while time.monotonic() < until:  # the experiment decides while traffic flows
            time.sleep(4)
            evaluate()
        for thread in threads:
            thread.join(timeout=120)
        assert not self.errors, self.errors[:5]

    def wait_async(self, client: httpx.Client) -> None:
        """Every accepted async run has ended (its end is counted once it is committed)."""
        pending = list(self.async_runs)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            status = client.get(f"/v1/runs/{pending[-1]}").json()["status"]
            if status in ("succeeded", "failed"):
                pending.pop()
            else:
                time.sleep(0.1)
        assert not pending, f"async runs still running: {pending}"


def store_counts(database_url: str) -> dict[str, float]:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:

            def one(sql: str) -> float:
                return float(connection.execute(text(sql)).scalar_one() or 0)

            return {
                "runs": one("SELECT count(*) FROM run"),
                "ended": one("SELECT count(*) FROM run WHERE status IN ('succeeded', 'failed')"),
                "succeeded": one("SELECT count(*) FROM run WHERE status = 'succeeded'"),
                "failed": one("SELECT count(*) FROM run WHERE status = 'failed'"),
                "attempts": one("SELECT sum(attempt) FROM run"),
                "cost": one("SELECT sum(cost_usd) FROM run"),
                "outcomes": one("SELECT count(*) FROM outcome"),
                "decisions": one("SELECT count(*) FROM experiment_decision"),
            }
    finally:
        engine.dispose()


def wait_for_scrape_after(prom: str, moment: float) -> None:
    """Prometheus holds a sample of the server scraped after ``moment`` (Unix time)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = query(prom, 'timestamp(up{job="rollgraph"} == 1)')
        if result and float(result[0]["value"][1]) > moment:
            return
        time.sleep(0.2)
    raise AssertionError("Prometheus did not scrape the server after the load")


def wait_for_rules(prom: str) -> None:
    """Every rule group has been evaluated on a scrape taken after the load."""
    time.sleep(2.5)  # two evaluation intervals past the scrape found by wait_for_scrape_after


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_prometheus_sees_what_the_store_holds_and_every_panel_has_data(
    database_url: str,
    admin_key: str,
    tmp_path: Path,
    serve: Callable[..., AbstractContextManager[str]],
) -> None:
    metrics_dir = tmp_path / "multiproc"
    metrics_dir.mkdir()
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # Decisions come from the test's /evaluate calls, at known moments.
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
    }
    headers = {"Authorization": f"Bearer {admin_key}"}
    with (
        serve(env, workers=2) as url,
        httpx.Client(base_url=url, headers=headers, timeout=30) as api,
    ):
        for source in (V1, V2):
            assert api.post("/v1/workflows", json={"source": source}).status_code == 201
        assert api.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
        started = api.post("/v1/experiments", json=EXPERIMENT)
        assert started.status_code == 201, started.text
        experiment = str(started.json()["id"])

        def evaluate() -> None:
            answer = api.post(f"/v1/experiments/{experiment}/evaluate")
            assert answer.status_code == 200, answer.text

        with prometheus(url.removeprefix("http://"), tmp_path) as prom:
            load = Load(url, headers)
            load.run(evaluate)
            load.wait_async(api)
            evaluate()
            ended = time.time()
            wait_for_scrape_after(prom, ended)
            wait_for_rules(prom)
            store = store_counts(database_url)
            assert store["failed"] > 0 and store["succeeded"] > 0, store

            # -- counters equal the store ----------------------------------------------------
            runs = by(prom, "sum by (status) (rollgraph_runs_total)", "status")
            resumes = by(prom, "sum by (status) (rollgraph_run_resumes_total)", "status")
            assert sum(runs.values()) == store["ended"]
            # A resumed run was counted failed at its first end; its rows says succeeded now.
            repaired = resumes.get("succeeded", 0.0)
            assert runs.get("succeeded", 0.0) + repaired == store["succeeded"]
            assert runs.get("failed", 0.0) - repaired == store["failed"]
            assert scalar(prom, "sum(rollgraph_assignments_total)") == store["runs"]
            assert scalar(prom, "sum(rollgraph_outcomes_total)") == store["outcomes"]
            assert scalar(prom, "sum(rollgraph_experiment_decisions_total)") == store["decisions"]
            attempts = scalar(prom, "sum(rollgraph_run_duration_seconds_count)")
            assert attempts == store["attempts"]
            cost = scalar(prom, "sum(rollgraph_run_cost_usd_total)")
            assert math.isclose(cost, store["cost"], rel_tol=1e-9), (cost, store["cost"])
            assert store["decisions"] > 0

            # -- every panel, annotation and recording rule has data -------------------------
            variables = {"workflow": "greet", "version": "v2", "experiment": experiment}
            empty: list[str] = []
            checked = 0
            for uid, dashboard in sorted(load_dashboards().items()):
                for panel in panel_queries(dashboard):
                    expr = fill(panel.expr, variables, rate_interval=RATE_INTERVAL)
                    checked += 1
                    if not query(prom, expr):
                        empty.append(f"{uid} / {panel.panel}: {expr}")
            assert checked >= 10
            for record in recording_rules():
                checked += 1
                if not query(prom, record):
                    empty.append(f"recording rule {record}")
            assert not empty, "queries without data:\n" + "\n".join(empty)

            # -- the candidate-error alert sees the candidate ---------------------------------
            alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
            names = {
                (a["labels"]["alertname"], a["labels"].get("version"), a["state"]) for a in alerts
            }
            candidate = [n for n in names if n[0] == "RollgraphCandidateErrorRatioAboveBaseline"]
            assert [n[1] for n in candidate] == ["v2"], names
            assert not any(
                n[0] == "RollgraphCandidateErrorRatioAboveBaseline" and n[1] == "v1" for n in names
            )


def recording_rules() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["record"] for group in groups for rule in group["rules"] if "record" in rule]
