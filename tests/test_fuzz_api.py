"""Property test of the whole HTTP API, generated from its own OpenAPI document (schemathesis).

For every operation, requests generated from the documented parameters and bodies must never get
a 5xx, must get a documented status, and must get a body that conforms to the documented schema.
It runs on one SQLite database seeded with the product-video example (v3.2 and v3.3 applied,
``prod`` on v3.2, v3.3 at 10 % on ``prod``) so that reads and runs find data; path parameters
are biased towards the seeded names for the same reason. Generation is derandomized: a failure
reproduces on every run.

Known API bugs that cannot be fixed from here are excluded by name in ``KNOWN_BUGS`` below, each
with its operation and check; an entry that no longer fails should be removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans

import engine
from control_plane.app import create_app
from control_plane.settings import Settings
from engine.providers import SimProvider
from tests.fixtures import bearer, example

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)  # never "-…", which a CLI reads as an option
AUTH = bearer(ADMIN_KEY)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Operation label ("METHOD /path") → checks not run on it, because of a reported API bug.
KNOWN_BUGS: dict[str, tuple[Any, ...]] = {}
SEEDED = {"name": "product-video", "label": "prod", "version": "v3.2"}


def _seed(client: TestClient) -> None:
    for version in ("v3.2", "v3.3"):
        source = example(version)
        response = client.post("/v1/workflows", json={"source": source}, headers=AUTH)
        assert response.status_code in (200, 201), response.text
    response = client.put(
        "/v1/workflows/product-video/labels/prod", json={"version": "v3.2"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    response = client.put(
        "/v1/workflows/product-video/rollouts/prod",
        json={"version": "v3.3", "percent": 10},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    run = {"workflow": "product-video", "input": {"prompt": "a red sneaker"}, "user_id": "u1"}
    response = client.post("/v1/run", json=run, headers=AUTH)
    assert response.status_code == 200, response.text


# The app is built at import, because schemathesis parametrizes the test from its document; its
# database lives in a directory that only the fixture below creates, seeds and removes, so that
# collecting this file (e.g. without ``-m slow``) touches no disk.
_DB_DIR = Path(tempfile.gettempdir()) / f"rollgraph-fuzz-{os.getpid()}-{secrets.token_hex(4)}"
app = create_app(
    Settings(env="test", database_url=f"sqlite:///{_DB_DIR / 'fuzz.db'}", admin_key=ADMIN_KEY),
    # The simulator without sleeps or random failures: runs are instant and deterministic.
    run_engine=lambda: engine.Engine(providers=[SimProvider(time_scale=0, failure_rate=0)]),
)
# What ``schemathesis.openapi.from_asgi("/openapi.json", app)`` does, minus fetching the document
# through the app, which would start its lifespan (migrations) at import.
schema = schemathesis.openapi.from_dict(app.openapi())
schema.app = app
schema.location = "/openapi.json"


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    # Half the time, the seeded workflow/label/version instead of random names.
    seeded = {k: SEEDED[k] for k in path_parameters or () if k in SEEDED}
    if not seeded:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, **seeded}])


@pytest.fixture(scope="module")
def seeded_app() -> Iterator[None]:
    _DB_DIR.mkdir(parents=True)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            _seed(client)
        yield
    finally:
        # schemathesis keeps the app's lifespan running for the whole process; end it here.
        shutdown_lifespans()
        shutil.rmtree(_DB_DIR, ignore_errors=True)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_conforms_to_its_openapi_document(case: Any, seeded_app: None) -> None:
    excluded = KNOWN_BUGS.get(f"{case.method.upper()} {case.path}", ())
    case.call_and_validate(
        headers=AUTH, checks=[check for check in CHECKS if check not in excluded]
    )
