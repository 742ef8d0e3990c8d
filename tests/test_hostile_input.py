"""Hostile input is a 4xx that names the field, on SQLite and on PostgreSQL, and changes nothing.

Every case was a 500 (or a 202 whose run then failed) before: PostgreSQL refuses a NUL in text,
neither store nor a JSON response can encode a lone surrogate, a 900-deep JSON value or a
500-deep YAML definition exhausted Python's recursion, integers past the column's type and
non-finite numbers reached the store. Each request below must be refused with the expected
status and field, and whatever was stored before must read back unchanged afterwards.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

import engine
from control_plane.cli import main
from control_plane.kit.storable import MAX_JSON_DEPTH, json_problem
from control_plane.runs.cost import MAX_RUN_COST_USD
from engine.providers import default_providers
from tests.fixtures import (
    GREET,
    GREET_LARGE,
    REDIS_URL,
    Response,
    app_client,
    apply,
    example,
    set_label,
)

JSON = {"content-type": "application/json"}
WITH_DATA = GREET.replace("name: greet", "name: data").replace(
    "  prompt: text", "  prompt: text\n  data: {type: json, required: false}"
)


def nested(depth: int) -> str:
    """A JSON array nested ``depth`` levels, as text (``json.dumps`` would recurse)."""
    return "[" * depth + "1" + "]" * depth


def run_body(extra: str, *, workflow: str = "greet") -> bytes:
    """A run request with ``extra`` spliced in raw, for what ``json=`` cannot send."""
    return ('{"workflow": "' + workflow + '", ' + extra + "}").encode()


class Case(NamedTuple):
    """A hostile request and how it must be refused: ``where`` is the field's location in a
    422 ``invalid_request``, or ``definition:<location>:<code>`` for a refused definition."""

    method: str
    path: str  # "{run}": the seeded run's id
    request: dict[str, Any]
    where: str
    status: int = 422


def run(where: str, **fields: Any) -> Case:
    body = {"workflow": "greet", "input": {"prompt": "x"}, **fields}
    return Case("POST", "/v1/run", {"json": body}, where)


def raw_run(fields: str, *, workflow: str = "data") -> Case:
    return Case("POST", "/v1/run", {"content": run_body(fields, workflow=workflow)}, "body.input")


def get(path: str, where: str, **params: str) -> Case:
    return Case("GET", path, {"params": params}, where)


def send(method: str, path: str, body: Any, where: str) -> Case:
    return Case(
        method, path, {"content": body} if isinstance(body, bytes) else {"json": body}, where
    )


NUL = "a\x00b"
DEEP_INPUT = f'"input": {{"prompt": "x", "data": {nested(900)}}}'
SUCCESS = {"name": "success", "direction": "increase", "mde": 0.05}
EXPERIMENT = {"workflow": "greet", "candidate": "v2", "ramp": [{"percent": 5}], "primary": SUCCESS}
ROLLOUT = "/v1/workflows/greet/rollouts/prod"


def nan_bound(value: float) -> bytes:  # json.dumps writes NaN and Infinity as Python reads them
    return json.dumps({**EXPERIMENT, "bounds": [{"metric": "success", "min": value}]}).encode()


CASES: dict[str, Case] = {
    "surrogate in an input, sync": raw_run('"input": {"prompt": "x \\ud800"}'),
    "surrogate in an input, async": raw_run('"mode": "async", "input": {"prompt": "x \\ud800"}'),
    "surrogate in an input's key": raw_run('"input": {"prompt": "x", "\\udfff": 1}'),
    "NUL in an input": run("body.input", input={"prompt": NUL}),
    "NUL in user_id": run("body.user_id", user_id=NUL),
    "NUL in version": run("body.version", version=NUL),
    "NUL in label": run("body.label", label=NUL),
    "900-deep JSON input": raw_run(DEEP_INPUT),
    "900-deep JSON input, async": raw_run('"mode": "async", ' + DEEP_INPUT),
    "NaN in an input": raw_run('"input": {"prompt": "x", "data": NaN}'),
    "Infinity in an input": raw_run('"input": {"prompt": "x", "data": [-Infinity]}'),
    "NUL in diff a": get("/v1/workflows/greet/diff", "query.a", a=NUL, b="v1"),
    "NUL in diff b": get("/v1/workflows/greet/diff", "query.b", a="v1", b=NUL),
    "NUL in runs' workflow": get("/v1/runs", "query.workflow", workflow=NUL),
    "NUL in runs' version": get("/v1/runs", "query.version", version=NUL),
    "NUL in audit's actor": get("/v1/audit", "query.actor", actor=NUL),
    "NUL in audit's target": get("/v1/audit", "query.target", target=NUL),
    "NUL in audit's kind": get("/v1/audit", "query.target_kind", target_kind=NUL),
    "NUL in experiments' workflow": get("/v1/experiments", "query.workflow", workflow=NUL),
    "NUL in a version path": get("/v1/workflows/greet/versions/v%00", "path.version"),
    "NUL in a run id path": get("/v1/runs/a%00b", "path.run_id"),
    "NUL in an outcome's run id": send("POST", "/v1/runs/a%00b/outcome", {"x": 1}, "path.run_id"),
    "attempt past 64 bits": get("/v1/runs/{run}", "query.attempt", attempt="9" * 20),
    "attempt past 32 bits": get("/v1/runs/{run}", "query.attempt", attempt="3000000000"),
    "outcome 1e308": send("POST", "/v1/runs/{run}/outcome", {"rating": 1e308}, "body.rating"),
    "outcome -2e12": send("POST", "/v1/runs/{run}/outcome", {"rating": -2e12}, "body.rating"),
    "outcome NaN": send("POST", "/v1/runs/{run}/outcome", b'{"rating": NaN}', "body.rating"),
    "outcome Infinity": send("POST", "/v1/runs/{run}/outcome", b'{"x": Infinity}', "body.x"),
    "NUL in an applied version": send(
        "POST", "/v1/workflows", {"source": GREET_LARGE, "version": NUL}, "body.version"
    ),
    "NUL in a definition's version": send(
        "POST",
        "/v1/workflows",
        {"source": GREET_LARGE + 'version: "v\\0"\n'},
        "definition:version:invalid_field",
    ),
    "YAML nested 500 deep": send(
        "POST",
        "/v1/workflows",
        {"source": GREET_LARGE + "description: " + "[" * 500 + "]" * 500 + "\n"},
        "definition:(root):too_deep",
    ),
    "JSON definition nested 900 deep": send(
        "POST",
        "/v1/workflows",
        {"source": '{"name": "greet", "nodes": ' + nested(900) + "}"},
        "definition:(root):too_deep",
    ),
    "NUL in a label move": send(
        "PUT", "/v1/workflows/greet/labels/prod", {"version": NUL}, "body.version"
    ),
    "NUL in a rollout": send("PUT", ROLLOUT, {"version": NUL, "percent": 10}, "body.version"),
    "NUL in a rollout's candidates": send(
        "PUT",
        ROLLOUT,
        {"candidates": [{"version": NUL, "percent": 10}]},
        "body.candidates.0.version",
    ),
    "NUL in an experiment's name": send(
        "POST", "/v1/experiments", {**EXPERIMENT, "name": NUL}, "body.name"
    ),
    "NUL in an experiment's candidate": send(
        "POST", "/v1/experiments", {**EXPERIMENT, "candidate": NUL}, "body.candidate"
    ),
    "NaN in an experiment's bound": send(
        "POST", "/v1/experiments", nan_bound(math.nan), "body.bounds.0.min"
    ),
    "Infinity in an experiment's bound": send(
        "POST", "/v1/experiments", nan_bound(math.inf), "body.bounds.0.min"
    ),
    "dead letters before 0-0": get("/v1/queue/dead-letters", "query.before", before="0-0"),
}


def refused_as(response: Response, status: int, where: str) -> str | None:
    """What is wrong with ``response`` as the refusal ``status``/``where``, or ``None``."""
    if response.status_code != status:
        return f"{response.status_code}: {response.text[:300]}"
    error = response.json()["error"]
    if where.startswith("definition:"):
        _, location, code = where.split(":")
        found = [(p["location"], p["code"]) for p in error.get("problems", [])]
        return None if (location, code) in found else f"problems {found}"
    locations = [f["location"] for f in error.get("fields", [])]
    return None if error["code"] == "invalid_request" and where in locations else f"{error}"


def snapshot(api: TestClient, run_id: str) -> list[Any]:
    """What was stored before the hostile requests, as the API reads it back."""
    workflow = "/v1/workflows/greet"
    paths = ["/v1/runs", f"/v1/runs/{run_id}", "/v1/workflows", "/v1/experiments"]
    paths += [f"{workflow}/versions", f"{workflow}/labels", f"{workflow}/rollouts/prod"]
    answers = [api.get(path) for path in paths]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [a.json() for a in answers]


@pytest.fixture
def seeded(api: TestClient) -> str:
    """``greet`` v1 on prod and v2, ``data`` (a json input) on prod, and one run with an
    outcome; returns the run's id."""
    apply(api, GREET, version="v1")
    apply(api, GREET_LARGE, version="v2")
    set_label(api, "greet", "prod", "v1")
    apply(api, WITH_DATA, version="v1")
    set_label(api, "data", "prod", "v1")
    run = api.post("/v1/run", json={"workflow": "greet", "input": {"prompt": "x"}, "user_id": "u"})
    assert run.status_code == 200, run.text
    run_id: str = run.json()["run_id"]
    outcome = api.post(f"/v1/runs/{run_id}/outcome", json={"rating": 4.5})
    assert outcome.status_code == 200, outcome.text
    return run_id


def test_every_hostile_request_is_a_4xx_naming_the_field_and_changes_nothing(
    api: TestClient, seeded: str
) -> None:
    before = snapshot(api, seeded)
    wrong = {}
    for name, case in CASES.items():
        headers = JSON if "content" in case.request else None
        path = case.path.format(run=seeded)
        response = api.request(case.method, path, headers=headers, **case.request)
        problem = refused_as(response, case.status, case.where)
        if problem is not None:
            wrong[name] = problem
    assert not wrong, json.dumps(wrong, indent=1)
    assert snapshot(api, seeded) == before
    # The outcome recorded before is still there: the same value again changes nothing.
    same = api.post(f"/v1/runs/{seeded}/outcome", json={"rating": 4.5})
    assert same.json()["metrics"] == {"rating": "unchanged"}


BILL = """
name: bill
inputs:
  usd: number
nodes:
  pay:
    uses: test.bill
    with: {usd: "${inputs.usd}"}
outputs:
  ok: "${pay.ok}"
"""


def _billing_engine() -> engine.Engine:
    """The simulator, and a kind that reports whatever cost it is told to (as a buggy or
    hostile plug-in could): the store's bound on a run's cost is the last line of defence."""
    kinds = engine.default_kinds.copy()

    @engine.node_kind("test.bill", inputs={"usd": "number"}, outputs={"ok": "boolean"}, kinds=kinds)
    async def bill(ctx: engine.NodeContext, params: dict[str, Any]) -> engine.NodeResult:
        return engine.NodeResult({"ok": True}, cost_usd=params["usd"])

    return engine.Engine(providers=default_providers(time_scale=0), kinds=kinds)


def _finished(client: TestClient, run_id: str) -> dict[str, Any]:
    for _ in range(200):
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if run["finished_at"] is not None:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish: {run}")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_run_billed_past_the_bound_is_stored_at_the_bound_saying_what_was_billed(
    database_url: str, admin_key: str, mode: str
) -> None:
    with app_client(database_url, admin_key, run_engine=_billing_engine) as api:
        apply(api, BILL, version="v1")
        body = {"workflow": "bill", "version": "v1", "mode": mode, "input": {"usd": 1e160}}
        response = api.post("/v1/run", json=body)
        assert response.status_code in (200, 202), response.text
        run = _finished(api, response.json()["run_id"])
    assert run["cost_usd"] == MAX_RUN_COST_USD
    assert "cost out of range" in run["error"] and "e+1" in run["error"]
    assert run["trace"]["cost_usd"] == MAX_RUN_COST_USD  # the sum; each step keeps its own


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_huge_media_length_is_refused_before_anything_is_billed(
    api: TestClient, mode: str
) -> None:
    apply(api, example("v3.3"), version="v3.3")  # video.generate bills per second asked for
    body = {"workflow": "product-video", "version": "v3.3", "mode": mode}
    response = api.post("/v1/run", json={**body, "input": {"prompt": "x", "seconds": 1e160}})
    assert response.status_code in (200, 202), response.text
    run = _finished(api, response.json()["run_id"])
    assert run["status"] == "failed"
    assert "outside its range 0 < seconds ≤ 600" in run["error"]
    steps = {s["node"]: s for s in run["trace"]["steps"]}
    assert steps["video"]["error_code"] == "out_of_range"
    assert steps["video"]["cost_usd"] == 0
    # What the other branches billed (the enhancement, perhaps the narration), not 5e159.
    assert run["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in steps.values()))
    assert run["cost_usd"] < 0.1


def test_json_problems_name_the_place_and_the_depth_bound_is_exact() -> None:
    at_bound: Any = "x"
    for _ in range(MAX_JSON_DEPTH):
        at_bound = [at_bound]
    assert json_problem(at_bound) is None
    assert str(json_problem([at_bound])).endswith("...: nested deeper than 64 levels")
    assert str(json_problem({"a": {"b": [at_bound]}})).startswith("a.b[0][0]")
    assert str(json_problem({"a": [{"b": "x\x00"}]})).startswith("a[0].b: contains a NUL")
    assert str(json_problem({"k\ud800": 1})).startswith("k\\ud800: the key contains a lone")


def test_the_cli_reports_a_deep_definition_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(GREET + "description: " + "[" * 500 + "]" * 500 + "\n")
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "nested deeper than 64 levels [too_deep]" in out + err
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text("workflow: " + "[" * 500 + "]" * 500 + "\n")
    assert main(["experiment", "start", str(experiment)]) == 2
    out, err = capsys.readouterr()
    assert "nested too deeply" in err and "Traceback" not in out + err


def test_a_stream_id_redis_would_refuse_is_a_422_and_async_runs_stay_accepted(
    redis_prefix: str, admin_key: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'rollgraph.db'}"
    with app_client(url, admin_key, redis_url=REDIS_URL, redis_prefix=redis_prefix) as api:
        apply(api, GREET, version="v1")
        set_label(api, "greet", "prod", "v1")
        for before in ("0-0", "18446744073709551616-0", "1-18446744073709551616", "١-1"):
            response = api.get("/v1/queue/dead-letters", params={"before": before})
            assert refused_as(response, 422, "query.before") is None, (before, response.text)
        last = api.get("/v1/queue/dead-letters", params={"before": f"{2**64 - 1}-{2**64 - 1}"})
        assert last.status_code == 200, last.text
        # Before, the first request tripped the Redis breaker and async runs got 503 for all.
        for _ in range(3):
            run = {"workflow": "greet", "mode": "async", "input": {"prompt": "x"}}
            assert api.post("/v1/run", json=run).status_code == 202
