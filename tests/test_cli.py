"""The ``rollgraph`` command line: ``validate`` and ``exec``, in-process and as a real process."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from control_plane.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/*.yaml"))
V33 = ROOT / "examples" / "product-video" / "v3.3.yaml"
DOC = ROOT / "examples" / "document-analysis" / "v1.yaml"
RUN_ID_RE = re.compile(r"--resume ([0-9a-f]{32})\b")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """Run ``main`` as the console script would: an argparse exit becomes an exit status."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the only line of ``text`` containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(keepends=True), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "rollgraph"
    return [str(script)] if script.exists() else [sys.executable, "-m", "control_plane.cli"]


# -- validate ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validate_example_is_valid(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 0, err
    assert f"{path}: valid:" in out
    assert "error" not in err


def test_validate_all_examples_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(EXAMPLES) >= 3
    code, out, _ = run_cli(capsys, "validate", *EXAMPLES)
    assert code == 0
    assert out.count(": valid:") == len(EXAMPLES)


BROKEN = """\
name: broken
inputs:
  prompt: text
nodes:
  enhance:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
  video:
    uses: video.generate
    with: {model: sim/video-fast, prompt: "${enhance.txt}"}
  extra:
    uses: video.generat
    with: {prompt: "x"}
  loop_a:
    uses: template
    with: {text: "${loop_b.text}"}
  loop_b:
    uses: template
    with: {text: "${loop_a.text}"}
  voice:
    uses: audio.tts
    with: {model: sim/voice-warm}
outputs:
  video: "${video.video}"
  loop: "${loop_a.text}"
  voice: "${voice.audio}"
"""


def test_validate_reports_every_problem_with_its_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 1
    assert "valid:" not in out
    assert "Traceback" not in out + err
    lines = {
        line for line in err.splitlines() if line.startswith(f"{path}:") and ": error:" in line
    }

    def reported(code: str) -> list[tuple[int, str]]:
        found = []
        for line in lines:
            if line.endswith(f"[{code}]"):
                number = line[len(f"{path}:") :].split(":", 1)[0]
                assert number.isdigit(), f"no line number in {line!r}"
                found.append((int(number), line))
        assert found, f"no {code} problem reported in:\n{err}"
        return found

    [(typo_line, typo)] = reported("unknown_output")
    assert typo_line == line_of(BROKEN, "${enhance.txt}")
    assert "did you mean enhance.text?" in typo

    [(kind_line, kind)] = reported("unknown_kind")
    assert kind_line == line_of(BROKEN, "video.generat\n")
    assert "video.generat" in kind
    assert "did you mean video.generate?" in kind

    [(cycle_line, cycle)] = reported("cycle")
    assert cycle_line in {line_of(BROKEN, "loop_a:"), line_of(BROKEN, "loop_b:")}
    assert "loop_a" in cycle
    assert "loop_b" in cycle

    [(param_line, param)] = reported("missing_param")
    # nodes.voice.with.script is not in the file: the closest line is that of voice's `with`.
    assert param_line == line_of(BROKEN, "{model: sim/voice-warm}")
    assert "script" in param
    assert f"{path}: invalid, 4 error(s)" in err


def test_validate_yaml_syntax_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("name: x\nnodes:\n  a: {uses: template\n  b: [\n")
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 1
    assert "Traceback" not in out + err
    assert re.search(rf"^{re.escape(str(path))}:\d+: error: .*cannot parse", err, re.M), err


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 2
    assert "Traceback" not in out + err
    assert str(path) in err
    assert "No such file" in err


def test_validate_mixed_files_exits_with_the_worst_status(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    code, out, _ = run_cli(capsys, "validate", V33, broken)
    assert code == 1
    assert f"{V33}: valid:" in out
    code, _, err = run_cli(capsys, "validate", broken, tmp_path / "missing.yaml")
    assert code == 2
    assert "missing.yaml" in err


def test_validate_warnings_do_not_fail(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "unused.yaml"
    path.write_text(
        "name: unused\n"
        "nodes:\n"
        "  a: {uses: template, with: {text: hi}}\n"
        "  b: {uses: template, with: {text: bye}}\n"
        "outputs: {a: '${a.text}'}\n"
    )
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 0
    assert f"{path}: valid:" in out
    assert f"{path}:4: warning: nodes.b:" in err


# -- exec ----------------------------------------------------------------------------------------


def exec_json(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli(capsys, "exec", *argv, "--json", "--time-scale", "0")
    assert "Traceback" not in err
    return code, strict_json(out)


def _no_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON (RFC 8259)")


def strict_json(text: str) -> Any:
    """The whole of ``text`` is one standard JSON document (no NaN or Infinity)."""
    return json.loads(text, parse_constant=_no_constant)


def test_exec_json_product_video(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = exec_json(capsys, V33, "--input", "prompt=a red sneaker", "--seed", "1")
    assert code == 0
    assert {"outputs", "trace"} <= set(doc)
    assert doc["status"] == "succeeded"
    assert doc["outputs"]["flagged"] is False
    assert doc["outputs"]["script"].startswith("a red sneaker")
    assert doc["outputs"]["video"]["$media"]["kind"] == "video"
    trace = doc["trace"]
    assert trace["run_id"] == doc["run_id"]
    assert trace["seed"] == 1
    steps = {s["node"]: s for s in trace["steps"]}
    assert set(steps) == {"enhance", "safety", "video", "voice", "music", "cut"}
    assert all(s["status"] == "succeeded" for s in steps.values()), steps
    assert trace["cost_usd"] > 0
    assert trace["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in steps.values()))
    assert steps["video"]["cost_usd"] > 0


def test_exec_of_an_invalid_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    code, out, err = run_cli(capsys, "exec", path, "-i", "prompt=x", "--time-scale", "0")
    assert code == 1
    assert out == ""
    assert "did you mean enhance.text?" in err
    code, _, err = run_cli(capsys, "exec", tmp_path / "nope.yaml")
    assert code == 2
    assert "nope.yaml" in err


def test_exec_missing_required_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "exec", V33, "--time-scale", "0")
    assert code == 2
    assert out == ""
    assert "prompt" in err
    assert "required" in err
    assert "Traceback" not in err


def test_exec_input_of_the_wrong_type(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "exec", V33, "--input", "prompt=x", "--input", "seconds=abc", "--time-scale", "0"
    )
    assert code == 2
    assert out == ""
    assert "'abc'" in err
    assert "number" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_exec_rejects_non_finite_number_input(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """``seconds=NaN`` must not run: it bills NaN dollars and --json then prints invalid JSON."""
    code, out, err = run_cli(
        capsys,
        "exec",
        V33,
        "-i",
        "prompt=x",
        "-i",
        f"seconds={value}",
        "--time-scale",
        "0",
        "--seed",
        "1",
        "--json",
    )
    if code != 2:
        doc = json.loads(out)
        pytest.fail(
            f"seconds={value} was accepted as an input (exit {code}): run {doc['status']}, "
            f"cost_usd {doc['trace']['cost_usd']}, error {doc['error']!r}"
        )
    assert out == ""
    assert value in err
    assert "Traceback" not in err


def test_exec_unknown_input_and_malformed_pair(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "exec", V33, "-i", "prompt=x", "-i", "promt=y")
    assert code == 2
    assert "promt" in err
    code, _, err = run_cli(capsys, "exec", V33, "-i", "prompt")
    assert code == 2
    assert "name=value" in err


def test_exec_document_analysis_waterfall(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "exec",
        DOC,
        "--input",
        "document=Acme Corp opened a shoe store in Lisbon.",
        "--time-scale",
        "0",
        "--seed",
        "1",
    )
    assert code == 0, out + err
    assert not out.lstrip().startswith("{")
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for node in ("summary", "topics", "sentiment", "entities", "compile"):
        assert node in rows, out
        assert "succeeded" in rows[node] or "fallback" in rows[node]
    assert out.splitlines()[0].startswith("run ")
    assert "document-analysis" in out.splitlines()[0]
    assert "outputs:" in out
    assert "report:" in out


# -- a failing run, then resume ------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.requests.append(self.path)
        raw = json.dumps({"fetched": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def flaky(tmp_path: Path, server: _Server) -> Path:
    """``fetch`` calls the local server, which is off the allow-list unless --allow-host says."""
    port = server.server_address[1]
    path = tmp_path / "flaky.yaml"
    path.write_text(
        f"""\
name: flaky
inputs:
  topic: text
nodes:
  draft:
    uses: llm.generate
    with: {{model: sim/writer-small, prompt: "Write about ${{inputs.topic}}"}}
  fetch:
    uses: http.json
    with: {{url: "http://127.0.0.1:{port}/data", method: POST, body: {{d: "${{draft.text}}"}}}}
  report:
    uses: template
    with: {{text: "{{d}} / {{f}}", values: {{d: "${{draft.text}}", f: "${{fetch.body}}"}}}}
outputs:
  report: "${{report.text}}"
"""
    )
    return path


def test_failing_run_without_cache(
    capsys: pytest.CaptureFixture[str], flaky: Path, server: _Server
) -> None:
    code, out, err = run_cli(capsys, "exec", flaky, "-i", "topic=shoes", "--time-scale", "0")
    assert code == 1
    assert "Traceback" not in out + err
    assert "allow-list" in out
    assert "--resume" not in out
    assert server.requests == []  # a refused host never sees a request


def test_failing_run_then_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flaky: Path, server: _Server
) -> None:
    db = tmp_path / "steps.db"
    common = ("-i", "topic=shoes", "--cache", db, "--time-scale", "0")
    code, out, err = run_cli(capsys, "exec", flaky, *common, "--seed", "3")
    assert code == 1
    assert "Traceback" not in out + err
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    assert rows["draft"] == "succeeded"
    assert rows["fetch"] == "failed"
    assert rows["report"] == "cancelled"
    assert f"127.0.0.1:{server.server_address[1]} is not on the http allow-list" in out
    match = RUN_ID_RE.search(out)
    assert match, f"no resume hint in:\n{out}"
    run_id = match.group(1)
    assert out.splitlines()[0].startswith(f"run {run_id}")
    assert str(db) in out[out.index("resume") :]
    assert server.requests == []

    code, doc = exec_json(capsys, flaky, *common, "--resume", run_id, "--allow-host", "127.0.0.1:*")
    assert code == 0, doc["error"]
    assert doc["run_id"] == run_id
    trace = doc["trace"]
    assert trace["resumed"] is True
    steps = {s["node"]: s for s in trace["steps"]}
    assert all(s["status"] == "succeeded" for s in steps.values()), steps
    # draft completed in the first run: served from the cache, not executed, not billed again.
    assert steps["draft"]["cache_hit"] is True
    assert steps["draft"]["cost_usd"] == 0
    assert steps["draft"]["cost_saved_usd"] > 0
    assert trace["cost_saved_usd"] == pytest.approx(steps["draft"]["cost_saved_usd"])
    assert steps["fetch"]["cache_hit"] is False
    assert steps["report"]["cache_hit"] is False
    assert server.requests == ["/data"]
    assert doc["outputs"]["report"].endswith('/ {"fetched": true}')

    # Resuming a run that has completed executes nothing at all.
    code, again = exec_json(capsys, flaky, *common, "--resume", run_id)
    assert code == 0, again["error"]
    assert all(s["cache_hit"] for s in again["trace"]["steps"]), again["trace"]["steps"]
    assert again["trace"]["cost_usd"] == 0
    assert again["outputs"] == doc["outputs"]
    assert server.requests == ["/data"]


def test_resume_needs_cache(capsys: pytest.CaptureFixture[str], flaky: Path) -> None:
    code, out, err = run_cli(capsys, "exec", flaky, "-i", "topic=x", "--resume", "0" * 32)
    assert code == 2
    assert "--cache" in err
    assert out == ""


def test_resume_keeps_the_seed_given_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flaky: Path
) -> None:
    """``--seed`` must not be silently dropped when resuming (the simulated providers read it)."""
    common = ("-i", "topic=shoes", "--cache", tmp_path / "steps.db", "--seed", "3")
    code, first = exec_json(capsys, flaky, *common)
    assert code == 1
    assert first["trace"]["seed"] == 3
    code, resumed = exec_json(
        capsys, flaky, *common, "--resume", first["run_id"], "--allow-host", "127.0.0.1:*"
    )
    assert code == 0
    assert resumed["trace"]["seed"] == 3


def resume_hint(out: str) -> list[str]:
    hint = next(line for line in out.splitlines() if line.startswith("resume with: "))
    argv = shlex.split(hint.removeprefix("resume with: "))
    assert argv[0] == "rollgraph"
    return argv[1:]


def test_printed_resume_command_carries_the_inputs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flaky: Path
) -> None:
    """The hint is a command line to copy: without the run's inputs it cannot even start."""
    db = tmp_path / "steps.db"
    code, out, _ = run_cli(
        capsys, "exec", flaky, "-i", "topic=shoes", "--cache", db, "--time-scale", "0"
    )
    assert code == 1
    argv = resume_hint(out)
    code, out, err = run_cli(
        capsys, *argv, "--allow-host", "127.0.0.1:*", "--time-scale", "0", "--json"
    )
    assert code == 0, err
    steps = {s["node"]: s for s in json.loads(out)["trace"]["steps"]}
    assert steps["draft"]["cache_hit"] is True


def test_printed_resume_command_quotes_paths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A cache path with a space must survive copying the hint into a shell."""
    path = tmp_path / "fails.yaml"
    path.write_text(
        "name: fails\n"
        "nodes:\n"
        "  fetch: {uses: http.json, with: {url: 'http://not-allowed.invalid/x'}}\n"
        "outputs: {body: '${fetch.body}'}\n"
    )
    db = tmp_path / "cache dir" / "steps.db"
    code, out, _ = run_cli(capsys, "exec", path, "--cache", db, "--time-scale", "0")
    assert code == 1
    argv = resume_hint(out)
    assert argv[argv.index("--cache") + 1] == str(db)


# -- the installed console script ----------------------------------------------------------------


@pytest.mark.slow
def test_console_script_end_to_end(tmp_path: Path) -> None:
    cmd = cli_command()
    done = subprocess.run(
        [*cmd, "exec", str(V33), "-i", "prompt=a red sneaker", "--json", "--time-scale", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = strict_json(done.stdout)
    assert doc["status"] == "succeeded"
    assert {s["node"] for s in doc["trace"]["steps"]} == {
        "enhance",
        "safety",
        "video",
        "voice",
        "music",
        "cut",
    }

    missing = subprocess.run(
        [*cmd, "validate", str(tmp_path / "nope.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 2
    assert "nope.yaml" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout


def test_validate_a_file_that_is_not_utf8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, _, err = run_cli(capsys, "validate", str(bad))
    assert code == 2
    assert "not UTF-8" in err
    assert "Traceback" not in err
