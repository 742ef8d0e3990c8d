"""Stateful property test of the HTTP API (schemathesis state machine over OpenAPI links).

``tests/test_fuzz_api.py`` sends each operation generated requests on its own; most of what it
reads is missing (404). Here the API's own document gains links between operations, so a
scenario chains real resources: define a workflow -> read that version -> move a label to it ->
set a rollout -> run it (sync or async) -> read the run -> record an outcome -> resume it ->
list runs; start an experiment -> read it, its results and decisions -> evaluate -> stop. Every
answer must not be a 5xx, must have a documented status and must match its documented schema.

Bodies that random text could not make valid are drawn from valid choices (workflow
definitions, the run's workflow and input, an experiment): the rest of each request is
generated. At least ``MIN_CALLS`` calls are made in all, derandomized, on SQLite. Each
scenario starts from the same store (emptied, then ``greet`` v1 on ``prod`` and v2 defined):
which links a scenario can follow depends on what earlier answers were (201 or 200
"unchanged", 201 or 409), and Hypothesis requires the same choices to lead to the same draws.
The state machine also calls operations with generated parameters (mostly 404s).
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import text
from sqlmodel import SQLModel

import engine
from control_plane.app import create_app
from control_plane.settings import Settings
from control_plane.store.db import create_db_engine
from engine.providers import SimProvider
from tests.fixtures import bearer, example

pytestmark = pytest.mark.slow

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)
AUTH = bearer(ADMIN_KEY)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
MIN_CALLS = 2000
GREET = """
name: greet
version: {version}
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {{model: sim/{model}, prompt: "${{inputs.prompt}}"}}
outputs:
  text: "${{write.text}}"
"""
SOURCES = [
    GREET.format(version="v1", model="writer-small"),
    GREET.format(version="v2", model="writer-large"),
    example("v3.2"),
    example("v3.3"),
]
EXPERIMENT = {
    "workflow": "greet",
    "name": "stateful",
    "candidate": "v2",
    "ramp": [{"percent": 50, "min_duration_s": 1}, {"percent": 100}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "min_runs_per_arm": 2,
}
# (source operation, status) -> [(target operation, parameters, request body)]
B = "$response.body#/"
LINKS: dict[tuple[str, str], list[tuple[str, dict[str, str], Any]]] = {
    ("POST /v1/workflows", "201"): [
        ("GET /v1/workflows/{name}/versions/{version}",
         {"name": B + "workflow", "version": B + "version"}, None),
        ("PUT /v1/workflows/{name}/labels/{label}", {"name": B + "workflow"},
         {"version": B + "version"}),
        ("PUT /v1/workflows/{name}/rollouts/{label}", {"name": B + "workflow"},
         {"version": B + "version", "percent": 50}),
        ("GET /v1/workflows/{name}/diff", {"name": B + "workflow"}, None),
        ("POST /v1/workflows/{name}/versions/{version}/archive",
         {"name": B + "workflow", "version": B + "version"}, None),
    ],
    ("PUT /v1/workflows/{name}/labels/{label}", "200"): [
        ("GET /v1/workflows/{name}/labels/{label}/history",
         {"name": B + "workflow", "label": B + "name"}, None),
        ("POST /v1/workflows/{name}/labels/{label}/rollback",
         {"name": B + "workflow", "label": B + "name"}, None),
        ("GET /v1/workflows/{name}/rollouts/{label}",
         {"name": B + "workflow", "label": B + "name"}, None),
    ],
    **{
        ("POST /v1/run", status): [
            ("GET /v1/runs/{run_id}", {"run_id": B + "run_id"}, None),
            ("POST /v1/runs/{run_id}/outcome", {"run_id": B + "run_id"}, None),
            ("POST /v1/runs/{run_id}/resume", {"run_id": B + "run_id"}, None),
        ]
        for status in ("200", "202")
    },
    ("POST /v1/experiments", "201"): [
        (f"{method} /v1/experiments/{{experiment_id}}{tail}", {"experiment_id": B + "id"}, None)
        for method, tail in (
            ("GET", ""), ("GET", "/results"), ("GET", "/decisions"),
            ("POST", "/evaluate"), ("POST", "/stop"), ("POST", "/resume"),
        )
    ],
}  # fmt: skip


def _document(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document with the links above, and valid choices for the bodies
    random text could not make valid."""
    doc: dict[str, Any] = copy.deepcopy(app.openapi())
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
    }
    for (source, status), targets in LINKS.items():
        links = operations[source]["responses"][status].setdefault("links", {})
        for target, parameters, body in targets:
            link: dict[str, Any] = {
                "operationId": operations[target]["operationId"],
                "parameters": parameters,
            }
            if body is not None:
                link["requestBody"] = body
            links[operations[target]["operationId"]] = link
    schemas = doc["components"]["schemas"]
    schemas["WorkflowApply"]["properties"]["source"] = {"enum": SOURCES}
    schemas["RunRequest"]["properties"]["workflow"] = {"enum": ["greet", "product-video"]}
    schemas["RunRequest"]["properties"]["input"] = {"enum": [{"prompt": "a red sneaker"}]}
    schemas["RunRequest"]["required"] = ["workflow", "input"]
    body = operations["POST /v1/experiments"]["requestBody"]["content"]["application/json"]
    body["schema"] = {"enum": [EXPERIMENT]}
    return doc


_DB_DIR = Path(tempfile.gettempdir()) / f"rollgraph-stateful-{os.getpid()}-{secrets.token_hex(4)}"
_DB_URL = f"sqlite:///{_DB_DIR / 'api.db'}"
app = create_app(
    # Experiments are judged by the scenarios' /evaluate calls only, not by the clock.
    Settings(env="test", database_url=_DB_URL, admin_key=ADMIN_KEY, experiment_eval_s=3600),
    run_engine=lambda: engine.Engine(providers=[SimProvider(time_scale=0, failure_rate=0.2)]),
)
schema = schemathesis.openapi.from_dict(_document(app))
schema.app = app
schema.location = "/openapi.json"


def _fresh_store() -> None:
    """Every row gone but the registry's generation, which moves on so that the app's caches
    forget what they read; then ``greet`` v1 on ``prod`` and v2 again."""
    store = create_db_engine(_DB_URL)
    try:
        with store.begin() as connection:
            for table in reversed(SQLModel.metadata.sorted_tables):
                if table.name != "registry_state":
                    connection.execute(table.delete())
            connection.execute(text("UPDATE registry_state SET generation = generation + 1"))
    finally:
        store.dispose()
    client = TestClient(app)  # the app's lifespan is already running (schemathesis's)
    for source in SOURCES[:2]:  # v2 too: an experiment can start from the first step
        made = client.post("/v1/workflows", json={"source": source}, headers=AUTH)
        assert made.status_code == 201, made.text
    moved = client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}, headers=AUTH)
    assert moved.status_code == 200, moved.text


class Machine(schema.as_state_machine()):  # type: ignore[misc]
    calls: ClassVar[int] = 0
    statuses: ClassVar[dict[int, int]] = {}

    def setup(self) -> None:
        _fresh_store()

    def get_call_kwargs(self, case: Any) -> dict[str, Any]:
        return {"headers": AUTH}

    def after_call(self, response: Any, case: Any) -> None:
        Machine.calls += 1
        Machine.statuses[response.status_code] = Machine.statuses.get(response.status_code, 0) + 1

    def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
        case.validate_response(response, checks=CHECKS)


@pytest.fixture
def live_app() -> Iterator[None]:
    _DB_DIR.mkdir(parents=True)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            # A label to route to, so that runs have somewhere to go from the first scenario.
            assert client.post(
                "/v1/workflows", json={"source": SOURCES[0]}, headers=AUTH
            ).is_success
            moved = client.put(
                "/v1/workflows/greet/labels/prod", json={"version": "v1"}, headers=AUTH
            )
            assert moved.is_success
        yield
    finally:
        shutdown_lifespans()
        shutil.rmtree(_DB_DIR, ignore_errors=True)


def test_chained_operations_never_answer_5xx_and_match_the_document(live_app: None) -> None:
    Machine.run(
        settings=settings(
            max_examples=180,  # 160 made 2,114 calls
            stateful_step_count=12,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    print(f"stateful: {Machine.calls} calls, statuses {sorted(Machine.statuses.items())}")
    assert Machine.calls >= MIN_CALLS, (Machine.calls, Machine.statuses)
    # The links reached real resources: runs, outcomes and experiments were made.
    assert Machine.statuses.get(200, 0) + Machine.statuses.get(201, 0) > Machine.calls // 10
