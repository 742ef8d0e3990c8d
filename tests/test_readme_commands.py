"""Every command in the README's shell blocks is run here, in the README's order, against a real
``rollgraph serve`` on SQLite (``rollgraph exec``/``validate`` without one), or is mapped in
``MAPPED`` to the test that exercises it; ``tests/test_readme.py`` fails on a command that is
neither, and on a mapped test that does not exist.

Placeholders are filled as a reader would: ``RUN_ID`` with the run the previous command printed
(for ``resume``, a run that failed while its API was down, which then comes up), ``FILE`` with
the example, ``experiment.yaml`` with the README's experiment block. Before ``rollback`` the
label is moved once more, so there is somewhere to roll back to."""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from control_plane.cli import main
from control_plane.client import SyncClient
from control_plane.settings import DEV_ADMIN_KEY
from tests.processes import free_port
from tests.readme import ROOT, Command, blocks, commands
from tests.test_readme_examples import python_block, run_python

# Command prefix -> the test that exercises it (a node id; test_readme checks each exists).
MAPPED: dict[str, str] = {
    "pip install .": "tests/test_install.py::test_pip_install_gives_the_rollgraph_command",
    "make run PORT=": "tests/test_demo.py::test_make_run_serves_on_port",
    "make run": (
        "tests/test_demo.py::test_demo_sets_up_a_new_store_and_keeps_changes_across_restarts"
    ),
    "make test": "tests/test_readme.py::test_make_target_runs_what_the_readme_says[test]",
    "rollgraph validate broken.yaml": (
        "tests/test_readme_examples.py::test_readme_validate_output_is_what_validate_prints"
    ),
    # The server this module's test runs against is `rollgraph serve` (tests/conftest.py).
    "rollgraph serve --processes": (
        "tests/test_server_processes.py::"
        "test_what_a_response_says_happened_is_visible_on_every_worker"
    ),
    "rollgraph serve --host 0.0.0.0": (
        "tests/test_scaleout.py::"
        "test_a_rollback_through_one_replica_is_served_by_the_other_within_a_second"
    ),
    "rollgraph serve": "tests/test_readme_commands.py::test_readme_commands_run_against_a_server",
    "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 rollgraph serve": (
        "tests/test_telemetry_export.py::"
        "test_a_served_run_is_exported_over_otlp_http_and_flushed_at_shutdown"
    ),
    "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 rollgraph worker": (
        "tests/test_telemetry_export.py::"
        "test_a_queued_run_continues_the_submitters_trace_on_the_worker"
    ),
    "export ROLLGRAPH_DATABASE_URL=": (
        "tests/test_scaleout.py::test_one_key_sent_to_both_replicas_at_once_executes_once"
    ),
    "export REDIS_URL=": (
        "tests/test_scaleout.py::test_one_key_sent_to_both_replicas_at_once_executes_once"
    ),
    "rollgraph worker --concurrency": (
        "tests/test_faults_replica.py::"
        "test_a_replica_killed_between_commit_and_enqueue_leaves_a_run_that_executes_once"
    ),
    "curl -N ": "tests/test_run_events.py::test_the_readme_curl_command_streams_a_run",
    "docker ": "tests/test_install.py::test_readme_deployment_commands_match_the_files",
    "export ROLLGRAPH_ADMIN_KEY=": (
        "tests/test_install.py::test_readme_deployment_commands_match_the_files"
    ),
}

# Commands whose README comment says they are refused in the state the README leaves: the exit
# code and what the error must say.
REFUSED: dict[str, tuple[int, str]] = {
    "rollgraph experiment resume": (1, "only a halted one resumes"),
    "rollgraph versions archive product-video v3.2": (1, "is the target of label(s) prod"),
}

# A run that fails while nothing listens at the allowed address, and succeeds once it does.
FLAKY = (
    "name: readme-fail\nnodes:\n  note:\n    uses: template\n    with: {text: ready}\n"
    '  api:\n    uses: http.json\n    with: {url: "http://127.0.0.1:PORT/${note.text}"}\n'
    'outputs:\n  body: "${api.body}"\n'
)
RUN_ID = re.compile(r'(?:\brun |"run_id": ")([0-9a-f]{32})\b')  # the text or the --json answer


def mapped(command: str) -> str | None:
    """The test a command is mapped to (the longest matching prefix), if any."""
    prefixes = [prefix for prefix in MAPPED if command.startswith(prefix)]
    return MAPPED[max(prefixes, key=len)] if prefixes else None


def runnable(command: str) -> bool:
    """Whether the server test runs ``command``: a ``rollgraph`` command or the README's export of
    the API key."""
    return command.startswith(("rollgraph ", "export ROLLGRAPH_API_KEY="))


def readme_commands() -> list[Command]:
    """The README's shell commands this module runs, in order."""
    found = [command for block in blocks() for command in commands(block)]
    return [c for c in found if mapped(c.text) is None and runnable(c.text)]


class Reader:
    """Runs the README's commands in one working directory and fills their placeholders."""

    def __init__(
        self,
        url: str,
        backend_port: int,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ):
        self.url, self.capsys, self.monkeypatch = url, capsys, monkeypatch
        self.backend_port = backend_port
        self.backend: ThreadingHTTPServer | None = None
        self.last_run: str | None = None
        self.failed_run: str | None = None

    def prepare(self, words: list[str]) -> list[str]:
        """The command's arguments with placeholders filled, after any setup it needs."""
        with SyncClient(self.url, DEV_ADMIN_KEY) as client:
            if words[:2] == ["rollgraph", "rollback"]:  # somewhere to roll back to
                client.promote(words[2], "v3.3")
            if words[:2] == ["rollgraph", "resume"]:  # a run that failed, then its API is back
                client.apply(FLAKY.replace("PORT", str(self.backend_port)))
                client.promote("readme-fail", "v1")
                failed = client.run("readme-fail", {})
                assert failed.status == "failed", failed
                self.failed_run = failed.run_id
                self.backend = ThreadingHTTPServer(("127.0.0.1", self.backend_port), _Ok)
                threading.Thread(target=self.backend.serve_forever, daemon=True).start()
        filled = []
        for word in words:
            if word == "RUN_ID":
                run = self.failed_run if words[1] == "resume" else self.last_run
                assert run is not None, f"no run printed before {shlex.join(words)}"
                word = run
            filled.append("examples/product-video/v3.3.yaml" if word == "FILE" else word)
        return filled

    def run(self, command: Command) -> tuple[int, str, str]:
        words = shlex.split(command.text)
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            self.monkeypatch.setenv(name, value)
            return 0, "", ""
        args = self.prepare(words)[1:]
        self.capsys.readouterr()
        try:
            code = main(args)
        except SystemExit as exc:  # --help
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        found = RUN_ID.findall(out)
        if found and args[0] != "trace":
            self.last_run = found[0]
        return code, out, err


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def reader(
    serve: Callable[..., AbstractContextManager[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Reader]:
    """A reader's working directory (the examples, ``var/`` and the README's experiment file)
    and a fresh dev server, as `rollgraph serve` starts one, with no API key in the environment
    until the README exports one."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "var").mkdir()
    experiments = [b for b in blocks() if b.lang == "yaml" and "workflow" in yaml.safe_load(b.text)]
    (tmp_path / "experiment.yaml").write_text(experiments[0].text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLLGRAPH_API_KEY", raising=False)
    port = free_port()  # where the flaky run's API will answer
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'rollgraph.db'}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": DEV_ADMIN_KEY,  # what `rollgraph serve` has without one
    }
    with serve({**env, "ROLLGRAPH_HTTP_ALLOW_HOSTS": f"127.0.0.1:{port}"}) as url:
        monkeypatch.setenv("ROLLGRAPH_URL", url)
        reader = Reader(url, port, capsys, monkeypatch)
        try:
            yield reader
        finally:
            if reader.backend is not None:
                reader.backend.shutdown()
                reader.backend.server_close()


@pytest.mark.slow
def test_readme_commands_run_against_a_server(reader: Reader) -> None:
    ran = readme_commands()
    assert len(ran) >= 30, [c.text for c in ran]
    for command in ran:
        code, out, err = reader.run(command)
        where = f"README.md:{command.line}: {command.text}"
        refused = [REFUSED[p] for p in REFUSED if command.text.startswith(p)]
        if refused:
            assert (code, refused[0][1] in err) == (refused[0][0], True), (where, out, err)
        else:
            assert code == 0, (where, out, err)
    # What the commands did is in the store: the resume ran the failed run again, the rollback
    # moved prod back, the README's experiment ran on prod and was stopped.
    assert reader.failed_run is not None
    with SyncClient(reader.url, DEV_ADMIN_KEY) as client:
        resumed = client.get_run(reader.failed_run)
        (experiment,) = client.experiments()
    assert (resumed.attempt, resumed.status) == (2, "succeeded")
    # The README's client block, against this server with the dev key.
    block = python_block("SyncClient(")
    shown: dict[str, object] = {"api_key": DEV_ADMIN_KEY}
    run_python(block, shown, block.text.replace("http://127.0.0.1:8000", reader.url))
    with SyncClient(reader.url, DEV_ADMIN_KEY) as client:
        followed = client.get_run(shown["run"].run_id)  # type: ignore[attr-defined]
        again = client.outcome(followed.run_id, {"converted": True})
    assert (followed.status, followed.mode) == ("succeeded", "async"), followed
    assert again.metrics == {"converted": "unchanged"}  # the block recorded it
    assert (experiment.workflow, experiment.label, experiment.status) == (
        "product-video",
        "prod",
        "stopped",
    )
