"""Helpers the API tests share: example workflows, an app with its ``TestClient``, applying
workflows and moving labels, API keys.

``conftest.py`` builds its fixtures from these; a test that needs an app of its own (other
settings, another engine, a restart) calls ``app_client`` directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

import httpx2
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import State

import engine
from control_plane.settings import Settings
from engine.providers import default_providers

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "product-video"
# The machine's Redis (``redis_prefix`` in conftest gives each test keys of its own there).
REDIS_URL = os.environ.get("ROLLGRAPH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# What a ``TestClient`` answers: starlette's test client is built on httpx2, not on httpx (which
# the project's own client and the tests of real servers use).
Response: TypeAlias = httpx2.Response
EngineFactory: TypeAlias = Callable[[], engine.Engine]

# One model call: the smallest workflow a run, a rollout or an experiment can use.
GREET = """
name: greet
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
outputs:
  text: "${write.text}"
"""
GREET_LARGE = GREET.replace("writer-small", "writer-large")  # another version of it


def example(version: str) -> str:
    """The source of ``examples/product-video/<version>.yaml`` (e.g. ``"v3.2"``)."""
    return (EXAMPLES / f"{version}.yaml").read_text(encoding="utf-8")


def simulated_engine() -> engine.Engine:
    """The default providers with the simulator's sleeps off: runs are instant and otherwise
    behave the same."""
    return engine.Engine(providers=default_providers(time_scale=0))


def bearer(key: str) -> dict[str, str]:
    """Headers that authenticate with ``key``."""
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def open_client(
    settings: Settings,
    *,
    run_engine: EngineFactory | None = simulated_engine,
    headers: dict[str, str] | None = None,
) -> Iterator[TestClient]:
    """A ``TestClient`` of ``create_app(settings, run_engine=run_engine)`` with its lifespan
    running; server errors are answers (500), not exceptions. ``run_engine=None``: the app's
    default engine."""
    # Imported here, not at the top: conftest imports this module, and collecting the engine's
    # and the analysis' tests should not need the whole control plane to import.
    from control_plane.app import create_app

    app = create_app(settings, run_engine=run_engine)
    with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
        yield client


@contextmanager
def app_client(
    database_url: str,
    admin_key: str,
    *,
    run_engine: EngineFactory | None = simulated_engine,
    authenticated: bool = True,
    **settings: Any,
) -> Iterator[TestClient]:
    """An app in the ``test`` environment on ``database_url`` whose settings admin key
    (``bootstrap-admin``) is ``admin_key``, plus any other ``settings``. ``authenticated``: the
    client sends that key with every request (else requests pass the headers they test)."""
    # The background evaluator acts only when a test asks (``evaluator.run_once``): on a loaded
    # machine a test can outlast the default 30 s and see an experiment promoted mid-test.
    settings.setdefault("experiment_eval_s", 3600)
    config = Settings(env="test", database_url=database_url, admin_key=admin_key, **settings)
    headers = bearer(admin_key) if authenticated else None
    with open_client(config, run_engine=run_engine, headers=headers) as client:
        yield client


def app_state(client: TestClient) -> State:
    """The state of the client's app (``runs``, ``compiler``, ``registry_cache``, ...)."""
    app = client.app
    assert isinstance(app, FastAPI)
    return app.state


def apply(
    client: TestClient,
    source: str,
    *,
    version: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``POST /v1/workflows``: a new version of the workflow ``source`` defines."""
    body = {"source": source} if version is None else {"source": source, "version": version}
    response = client.post("/v1/workflows", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def set_label(
    client: TestClient,
    workflow: str,
    label: str,
    version: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """``PUT /v1/workflows/<workflow>/labels/<label>``: the label on ``version``."""
    response = client.put(
        f"/v1/workflows/{workflow}/labels/{label}", json={"version": version}, headers=headers
    )
    assert response.status_code == 200, response.text


def seed_workflow(
    client: TestClient,
    workflow: str,
    versions: Mapping[str, str],
    labels: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Apply each ``version: source`` of ``workflow`` in order, then put each
    ``label: version``."""
    for version, source in versions.items():
        apply(client, source, version=version, headers=headers)
    for label, version in labels.items():
        set_label(client, workflow, label, version, headers=headers)


def new_key(
    client: TestClient, name: str, role: str, *, headers: Mapping[str, str] | None = None
) -> str:
    """A new API key (``POST /v1/keys``, as the client's admin unless ``headers`` say who)."""
    response = client.post("/v1/keys", json={"name": name, "role": role}, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    key: str = response.json()["key"]
    return key
