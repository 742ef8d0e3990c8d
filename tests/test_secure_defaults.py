"""Secure defaults (issue 13): no dev key off loopback, admin key strength estimated, security
headers on every answer, unknown keys remembered briefly and failures rate-limited per client."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from control_plane.access import service
from control_plane.access.failures import FAILURES_PER_S, FailedKeys
from control_plane.settings import (
    DEV_ADMIN_KEY,
    MIN_ADMIN_KEY_BITS,
    Settings,
    admin_key_problem,
    bind_problem,
    estimate_key_bits,
)
from tests.fixtures import ROOT, app_client, app_state, bearer, new_key
from tests.processes import free_port

RECIPE = "secrets.token_urlsafe(32)"


def _serve(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROLLGRAPH_")}
    base["ROLLGRAPH_DATABASE_URL"] = f"sqlite:///{tmp_path / 'rollgraph.db'}"
    return subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "serve", "--port", str(free_port()), *args],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# -- 1. the dev key never listens beyond loopback ------------------------------------------------
@pytest.mark.parametrize("env", [{}, {"ROLLGRAPH_ENV": "dev"}, {"ROLLGRAPH_ENV": "test"}])
def test_serve_on_all_interfaces_with_the_dev_key_exits_with_one_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    if env.get("ROLLGRAPH_ENV") == "test":
        env = {**env, "ROLLGRAPH_ADMIN_KEY": DEV_ADMIN_KEY.upper()}  # refused whatever the case
    done = _serve(env, tmp_path, "--host", "0.0.0.0")
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "ROLLGRAPH_ADMIN_KEY" in lines[0] and "Traceback" not in done.stderr


def test_loopback_keeps_the_dev_key_and_other_hosts_need_a_real_one() -> None:
    dev = Settings(env="dev", database_url="sqlite://")
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert bind_problem(dev, host) is None, host
    for host in ("0.0.0.0", "::", "10.0.0.5", "example.com"):
        problem = bind_problem(dev, host)
        assert problem is not None and "ROLLGRAPH_ADMIN_KEY" in problem and "\n" not in problem
    strong = Settings(env="dev", database_url="sqlite://", admin_key=secrets.token_urlsafe(32))
    assert bind_problem(strong, "0.0.0.0") is None


# -- 2. strength, not a word list ---------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "123456789012345678901234",
        "qwertyuiopasdfghjklzxcvb",
        "Dev-Admin-Key-Not-For-Production",
        "changeme",
        "a" * 64,
        "abcXYZ12" * 6,
        "Passw0rd!" * 5,
        "zyxwvutsrqponmlkjihgfedcba9876543210",
    ],
)
def test_weak_keys_are_refused_with_one_line_naming_the_rule(key: str) -> None:
    problem = admin_key_problem(key)
    assert problem is not None and "\n" not in problem and RECIPE in problem
    with pytest.raises(ValidationError, match="ROLLGRAPH_ADMIN_KEY"):
        Settings(env="prod", database_url="sqlite://", admin_key=key)


def test_generated_keys_pass() -> None:
    # The recipe the error names, the test-suite's keys (tests/conftest.py) and 128-bit hex.
    for _ in range(2000):
        assert admin_key_problem(secrets.token_urlsafe(32)) is None
        assert admin_key_problem("rgk" + secrets.token_urlsafe(32)) is None
    assert estimate_key_bits("rgk" + secrets.token_urlsafe(32)) > 2 * MIN_ADMIN_KEY_BITS - 60
    assert admin_key_problem("Zq8-pL2mV7xR4tK9wB3nY6cJ1hF5") is None


def test_a_weak_key_in_prod_is_one_line_from_serve_not_a_traceback(tmp_path: Path) -> None:
    done = _serve({"ROLLGRAPH_ENV": "prod", "ROLLGRAPH_ADMIN_KEY": "changeme"}, tmp_path)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "too weak" in done.stderr and RECIPE in done.stderr
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr


# -- 3. security headers ------------------------------------------------------------------------
API_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


def test_security_headers_on_json_errors_and_docs(database_url: str, admin_key: str) -> None:
    with app_client(database_url, admin_key, authenticated=False, max_body_bytes=64) as client:
        answers = {
            "ok": client.get("/v1/keys", headers=bearer(admin_key)),
            "401": client.get("/v1/keys"),
            "404": client.get("/nowhere"),
            "413": client.post("/v1/run", content=b"x" * 100, headers=bearer(admin_key)),
            "health": client.get("/healthz"),
        }
        expected = {"ok": 200, "401": 401, "404": 404, "413": 413, "health": 200}
        for name, response in answers.items():
            assert response.status_code == expected[name], (name, response.text)
            for header, value in API_HEADERS.items():
                assert response.headers.get(header) == value, (name, header)
        assert answers["ok"].headers["cache-control"] == "no-store"
        assert "cache-control" not in answers["health"].headers
        docs = client.get("/docs")
        assert docs.status_code == 200
        # The docs page runs inline scripts from a CDN: only framing is forbidden there.
        assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert docs.headers["x-frame-options"] == "DENY"


# -- 4. unknown keys remembered, failures limited -----------------------------------------------
def _made_up_key() -> str:
    return f"rg_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every store lookup of a key (a spy on ``service.find_key``; the store is real)."""
    seen: list[str] = []
    real: Callable[..., service.StoredKey | None] = service.find_key

    def spy(session: object, *, key: str) -> service.StoredKey | None:
        seen.append(key)
        return real(session, key=key)

    monkeypatch.setattr(service, "find_key", spy)
    return seen


def test_an_unknown_key_is_looked_up_once_then_remembered(
    database_url: str, admin_key: str, lookups: list[str]
) -> None:
    with app_client(database_url, admin_key, authenticated=False) as client:
        unknown = _made_up_key()
        for _ in range(5):
            assert client.get("/v1/runs", headers=bearer(unknown)).status_code == 401
        assert lookups == [unknown]
        # A real key created afterwards is found (the change bumps the generation).
        real = new_key(client, "reader", "viewer", headers=bearer(admin_key))
        assert client.get("/v1/runs", headers=bearer(real)).status_code == 200


def test_negative_entries_expire_and_follow_the_generation() -> None:
    now = [0.0]
    failed = FailedKeys(unknown_ttl_s=5, clock=lambda: now[0])
    failed.remember_unknown("d", generation=3)
    assert failed.is_known_unknown("d", generation=3)
    assert not failed.is_known_unknown("d", generation=4)
    failed.remember_unknown("d", generation=4)
    now[0] = 5.0
    assert not failed.is_known_unknown("d", generation=4)
    small = FailedKeys(capacity=3)
    for i in range(10):
        small.remember_unknown(str(i), generation=0)
        small.record_failure(f"10.0.0.{i}")
    assert len(small) == 6


def test_a_client_whose_keys_fail_too_many_lookups_gets_429_and_valid_keys_still_work(
    database_url: str, admin_key: str, lookups: list[str]
) -> None:
    with app_client(database_url, admin_key, authenticated=False) as client:
        now = [0.0]  # a frozen clock: the bucket does not refill during the test
        app_state(client).failed_keys = FailedKeys(clock=lambda: now[0])
        viewer = new_key(client, "reader", "viewer", headers=bearer(admin_key))
        assert client.get("/v1/runs", headers=bearer(viewer)).status_code == 200  # now cached
        lookups.clear()
        limit = int(FAILURES_PER_S)
        statuses = [
            client.get("/v1/runs", headers=bearer(_made_up_key())).status_code
            for _ in range(limit + 5)
        ]
        assert statuses == [401] * limit + [429] * 5
        assert len(lookups) == limit  # over the limit, keys are not looked up at all
        limited = client.get("/v1/runs", headers=bearer(_made_up_key()))
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "too_many_failed_keys"
        assert limited.headers["retry-after"] == "1"
        # The admin key and a cached key still authenticate from the same address.
        assert client.get("/v1/runs", headers=bearer(viewer)).status_code == 200
        assert client.get("/v1/keys", headers=bearer(admin_key)).status_code == 200
        # A second later the client may fail again.
        now[0] = 1.0
        assert client.get("/v1/runs", headers=bearer(_made_up_key())).status_code == 401


def test_the_bucket_refills() -> None:
    now = [0.0]
    failed = FailedKeys(failures_per_s=2, clock=lambda: now[0])
    assert failed.record_failure("a") is None
    assert failed.record_failure("a") is None
    assert failed.record_failure("a") == 1  # the third in the same second
    assert failed.retry_after("b") is None  # per client
    now[0] = 2.0
    assert failed.retry_after("a") is None
    assert failed.record_failure("a") is None
