"""``make demo`` (``python -m demos.experiments``): against its own in-process server,
the candidate worse on a guardrail is rolled back and the better one promoted; a URL where no
rollgraph server answers is a message and exit status 1, never a traceback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from control_plane.experiments.schemas import ExperimentCreate
from demos.experiments import SCENARIOS, Scenario, main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "product-video"


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_demo_rolls_back_the_worse_candidate_and_promotes_the_better_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens there, so the demo starts (and stops) its own server.
    monkeypatch.setenv("ROLLGRAPH_URL", f"http://127.0.0.1:{_unused_port()}")
    code = main([])
    out, err = capsys.readouterr()
    assert code == 0, err + out
    assert "its own, in this process" in out
    assert "→ ramp to 25 %" in out
    assert "→ ramp to 50 %" in out
    # Scenario 1 ends in the rollback with the guardrail's reason, the label left alone.
    assert "⇒ ROLLED BACK after" in out
    assert "label demo stays on v3.2" in out
    assert "[guardrail_regression]" in out
    # Scenario 2 ends in the promotion, the label moved.
    assert "⇒ PROMOTED after" in out
    assert "label demo v3.2 → v3.2-writer-large" in out
    assert "[primary_better]" in out
    assert "v3.2-noretry rolled back; v3.2-writer-large promoted, as intended" in out
    assert "Traceback" not in err


def test_a_url_that_does_not_work_is_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROLLGRAPH_URL", "ftp://127.0.0.1:1")
    assert main([]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("rollgraph demo: ROLLGRAPH_URL=ftp://127.0.0.1:1 does not work")
    assert "Traceback" not in err


class _NotRollgraph(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    """An HTTP server that is not rollgraph: every path is a 404."""
    server = HTTPServer(("127.0.0.1", 0), _NotRollgraph)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_another_server_at_the_url_is_a_message_not_a_second_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], other_server: str
) -> None:
    monkeypatch.setenv("ROLLGRAPH_URL", other_server)
    assert main([]) == 1
    out, err = capsys.readouterr()
    assert "GET /readyz says 404: not a ready rollgraph server" in err
    assert "its own" not in out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.experiment_file)
def test_experiment_files_are_valid_experiments(scenario: Scenario) -> None:
    path = EXAMPLES / "experiments" / scenario.experiment_file
    body = ExperimentCreate.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    candidate = yaml.safe_load((EXAMPLES / scenario.candidate_file).read_text(encoding="utf-8"))
    assert body.candidate == candidate["version"]
    assert body.workflow == candidate["name"] == "product-video"
    assert body.label == "demo"  # never prod: `make run` owns it
