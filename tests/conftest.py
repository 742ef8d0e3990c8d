"""Shared fixtures: every store test runs against SQLite (a temp file) and PostgreSQL.

PostgreSQL isolation: each test gets its own schema with a random name, selected through the
connection's ``search_path`` (``options=-csearch_path=...`` in the URL), so migrations, tables
and ``alembic_version`` live only there; the schema is dropped (CASCADE) after the test, and
concurrent runs on the same server never see each other. When the server is unreachable the
PostgreSQL variant is skipped, saying why, or fails under ``CI=true``.

``api`` is an app on that database with its ``TestClient`` (helpers in ``tests/fixtures.py``);
``redis_prefix`` a key prefix of the test's own on the machine's Redis. ``serve`` starts a real
``rollgraph serve`` process (one or several workers) for end-to-end tests.
"""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from control_plane.store.db import create_db_engine, make_session_factory
from control_plane.store.migrations import upgrade_to_head

# The console's browser tests' `browser` and `page` fixtures, for any module that asks.
from tests.console_browser import browser, page  # noqa: F401
from tests.fixtures import REDIS_URL, app_client, bearer
from tests.processes import free_port, stop, wait_ready

POSTGRES_URL = os.environ.get(
    "ROLLGRAPH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@functools.cache
def _postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or ``None``; asked once per session."""
    probe = create_db_engine(make_url(POSTGRES_URL).update_query_dict({"connect_timeout": "3"}))
    try:
        with probe.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "no server here"
        return f"PostgreSQL at {POSTGRES_URL} is unreachable: {type(exc).__name__}: {exc}"
    finally:
        probe.dispose()
    return None


@functools.cache
def _redis_unreachable() -> str | None:
    """Why Redis cannot be used, or ``None``; asked once per session."""
    probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        probe.ping()
    except Exception as exc:  # any failure to connect means "no server here"
        return f"Redis at {REDIS_URL} is unreachable: {type(exc).__name__}: {exc}"
    finally:
        probe.close()
    return None


def _require(reason: str | None, hint: str) -> None:
    """Skip the test saying why its server is missing, or fail it under ``CI=true``."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: these tests must run)")
    pytest.skip(f"{reason}; {hint}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, on each backend; nothing survives the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rollgraph.db'}"
        return
    _require(_postgres_unreachable(), "start it with `pg_ctlcluster ... main start`")
    schema = f"rg_test_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def empty_engine(database_url: str) -> Iterator[Engine]:
    """An engine on the empty database, disposed after the test (pooled connections closed
    before the schema is dropped)."""
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_engine(empty_engine: Engine) -> Engine:
    """An engine on a database migrated to head."""
    upgrade_to_head(empty_engine)
    return empty_engine


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    """A session the test commits itself, like a request would."""
    with make_session_factory(db_engine)() as session:
        yield session


@pytest.fixture
def admin_key() -> str:
    """A strong settings admin key (the built-in ``bootstrap-admin``), new for every test."""
    return "rgk" + secrets.token_urlsafe(32)  # never "-…", which a CLI reads as an option


@pytest.fixture
def admin_headers(admin_key: str) -> dict[str, str]:
    """Headers that authenticate as ``bootstrap-admin``: pass as ``TestClient(headers=...)``."""
    return bearer(admin_key)


@pytest.fixture
def api(database_url: str, admin_key: str) -> Iterator[TestClient]:
    """An app on the test's database (the simulator without its sleeps) and its client, which
    sends ``admin_key``; no workflow yet."""
    with app_client(database_url, admin_key) as client:
        yield client


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own on the Redis at ``REDIS_URL``; its keys are deleted
    afterwards. Without Redis the test is skipped (under ``CI=true`` it fails)."""
    _require(_redis_unreachable(), "start it with `redis-server --daemonize yes`")
    prefix = f"rgtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    cleanup = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(cleanup.scan_iter(match=f"{prefix}:*"))
        if keys:
            cleanup.delete(*keys)
    finally:
        cleanup.close()


@contextmanager
def rollgraph_server(env: Mapping[str, str], *, workers: int = 1) -> Iterator[str]:
    """``rollgraph serve`` on a free loopback port with ``env`` over this process's environment;
    yields its URL once ``/readyz`` answers, and stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "control_plane.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--processes", str(workers)],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    url = f"http://127.0.0.1:{port}"

    def output() -> str:  # read only once it exited: a live server's stderr would block
        return stderr.read().decode()

    try:
        wait_ready(proc, f"{url}/readyz", timeout_s=60, what="the server", output=output)
        yield url
    finally:
        stop(proc)
        stderr.close()


@pytest.fixture(scope="session")
def serve() -> Callable[..., AbstractContextManager[str]]:
    """``with serve(env, workers=2) as url:`` a real server (see ``rollgraph_server``)."""
    return rollgraph_server


@contextmanager
def rollgraph_worker(env: Mapping[str, str], *, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``rollgraph worker --name NAME`` with ``env`` over this process's environment; yields the
    process (a test may kill it) and stops it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "control_plane.cli", "worker", "--name", name],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def worker() -> Callable[..., AbstractContextManager[subprocess.Popen[bytes]]]:
    """``with worker(env, name="w1") as proc:`` a real ``rollgraph worker`` process."""
    return rollgraph_worker
