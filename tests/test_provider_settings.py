"""Provider settings where they apply: per-provider concurrency and the simulator's time scale
from the server's settings and `rollgraph exec` flags, and an http.json refusal that says how
to allow the host where the run happened (the server's settings, exec's flags, Engine(...))."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from pydantic import ValidationError

import engine
from control_plane.cli import main
from control_plane.settings import Settings, get_settings, provider_limits, settings_problem
from engine.providers import SimProvider
from tests.fixtures import app_client, app_state, seed_workflow
from tests.test_executor import CountingProvider

WIDE = "\n".join(
    ["name: wide", "nodes:"]
    + [
        f"  n{i}:\n    uses: llm.generate\n    with: {{model: fake/m, prompt: p{i}}}"
        for i in range(6)
    ]
    + ["outputs:"]
    + [f"  o{i}: ${{n{i}.text}}" for i in range(6)]
)
FETCH = """name: fetch
inputs: {url: text}
nodes:
  get:
    uses: http.json
    with: {url: "${inputs.url}"}
    retry: {max_attempts: 1}
outputs: {body: "${get.body}"}
"""


class _Json(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def local_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Json)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_provider_limits_parse_and_name_what_is_wrong() -> None:
    assert provider_limits(" sim=64, openai=8 ") == {"sim": 64, "openai": 8}
    assert provider_limits("") == {}
    for bad in ("sim", "sim=0", "sim=x", "=3", "sim=1e3", "sim=100001"):
        with pytest.raises(ValidationError) as caught:
            Settings(env="dev", provider_concurrency=f"openai=2,{bad}")
        assert settings_problem(caught.value).startswith(
            f"ROLLGRAPH_PROVIDER_CONCURRENCY: entry {bad!r} is not provider=N"
        ), bad
    for bad_scale in (-1.0, float("nan"), 1e308):
        with pytest.raises(ValidationError):
            Settings(env="dev", sim_time_scale=bad_scale)


def test_the_engine_refuses_an_unknown_provider_or_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match=r"provider 'nope'; known: fake"):
        engine.Engine(providers=[CountingProvider(None)], concurrency={"nope": 2})
    with pytest.raises(ValueError, match="must be a whole number >= 1, got 0"):
        engine.Engine(providers=[CountingProvider(None)], concurrency={"fake": 0})


def test_the_servers_concurrency_setting_bounds_its_provider(
    database_url: str, admin_key: str
) -> None:
    provider = CountingProvider(None)
    factory = lambda: engine.Engine(providers=[provider])  # noqa: E731 - one use
    with app_client(database_url, admin_key, run_engine=factory) as client:
        seed_workflow(client, "wide", {"v1": WIDE}, {"prod": "v1"})
        assert client.post("/v1/run", json={"workflow": "wide"}).json()["status"] == "succeeded"
        assert provider.peak == 6  # no limit of its own: every branch at once
    provider.peak = 0
    with app_client(
        database_url, admin_key, run_engine=factory, provider_concurrency="fake=2"
    ) as client:
        ran = client.post("/v1/run", json={"workflow": "wide"}).json()
        assert ran["status"] == "succeeded" and ran["cost_usd"] == pytest.approx(0.06)
        assert provider.peak == 2


def test_the_servers_time_scale_setting_reaches_its_simulator(
    database_url: str, admin_key: str
) -> None:
    factory = lambda: engine.Engine(providers=[SimProvider(time_scale=5)])  # noqa: E731
    with app_client(database_url, admin_key, run_engine=factory, sim_time_scale=0) as client:
        sims = [p for p in app_state(client).compiler.engine.providers if p.name == "sim"]
        assert [s.time_scale for s in sims] == [0]
    with app_client(database_url, admin_key, run_engine=factory) as client:
        sims = [p for p in app_state(client).compiler.engine.providers if p.name == "sim"]
        assert [s.time_scale for s in sims] == [5]


def test_a_refused_host_on_the_server_names_the_servers_setting(
    database_url: str, admin_key: str, local_url: str
) -> None:
    with app_client(database_url, admin_key) as client:
        seed_workflow(client, "fetch", {"v1": FETCH}, {"prod": "v1"})
        ran = client.post("/v1/run", json={"workflow": "fetch", "input": {"url": local_url}})
        run = client.get(f"/v1/runs/{ran.json()['run_id']}").json()
    (step,) = run["trace"]["steps"]
    assert step["error_code"] == "host_not_allowed"
    assert "ROLLGRAPH_HTTP_ALLOW_HOSTS=HOST:PORT on the server and its workers" in step["error"]
    assert "Engine(" not in step["error"] and "rollgraph exec" not in step["error"]


def exec_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str
) -> tuple[int, str, str]:
    path = tmp_path / "fetch.yaml"
    path.write_text(FETCH)
    code = main(["exec", str(path), "--time-scale", "0", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_exec_names_its_own_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, local_url: str
) -> None:
    code, out, _ = exec_cli(capsys, tmp_path, "--input", f"url={local_url}", "--json")
    step = json.loads(out)["trace"]["steps"][0]
    assert code == 1 and "`rollgraph exec --allow-host HOST:PORT`" in step["error"]
    host = local_url.removeprefix("http://").rstrip("/")
    code, out, _ = exec_cli(
        capsys, tmp_path, "--input", f"url={local_url}", "--allow-host", host, "--json",
        "--concurrency", "sim=1", "--concurrency", "openai=2",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["outputs"] == {"body": {"ok": True}}
    code, _, err = exec_cli(capsys, tmp_path, "--input", "url=x", "--concurrency", "nope=2")
    assert code == 2
    assert err.strip() == "rollgraph: --concurrency: concurrency names provider 'nope'; " + (
        "known: openai, sim"
    )
    with pytest.raises(SystemExit) as exited:
        exec_cli(capsys, tmp_path, "--concurrency", "sim=lots")
    assert exited.value.code == 2
    assert "entry 'sim=lots' is not provider=N" in capsys.readouterr().err


def test_serve_and_worker_refuse_an_unknown_provider_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ROLLGRAPH_ENV", "dev")
    monkeypatch.setenv("ROLLGRAPH_DATABASE_URL", f"sqlite:///{tmp_path / 'rg.db'}")
    monkeypatch.setenv("ROLLGRAPH_PROVIDER_CONCURRENCY", "sim=4,anthropic=2")
    get_settings.cache_clear()
    try:
        for command in (["serve", "--port", "1"], ["worker"]):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert err == (
                f"rollgraph {command[0]}: ROLLGRAPH_PROVIDER_CONCURRENCY names provider "
                "'anthropic'; known: openai, sim\n"
            )
    finally:
        get_settings.cache_clear()
    assert not (tmp_path / "rg.db").exists()  # refused before touching the store
