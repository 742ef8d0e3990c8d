"""Runs from the shell against a real `rollgraph serve` (SQLite), issue 18: `run --wait` and
`runs follow` until the run ends (exit code = its status), `runs list` with the API's filters,
`outcome`, `versions archive`, `--idempotency-key`, `--json` on every answer, schema errors
naming the field, and what the CLI says when a sent request got no answer."""

from __future__ import annotations

import json
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.cli import main
from tests.fixtures import GREET, GREET_LARGE

ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)
FAILING = (
    "name: cli-fail\nnodes:\n  note:\n    uses: template\n    with: {text: ready}\n"
    "  api:\n    uses: http.json\n"
    '    with: {url: "https://not-allowed.example/${note.text}"}\n'
    'outputs:\n  body: "${api.body}"\n'
)
TWO_WORDS = ("keys", "experiment", "runs", "rollout")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("cli-runs")
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{tmp / 'rollgraph.db'}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": ADMIN_KEY,
        "ROLLGRAPH_PROGRESS_INTERVAL_S": "0.05",  # a running step is seen while it runs
    }
    with serve(env) as url:
        for name, source, version in (
            ("greet", GREET, "v1"),
            ("greet", GREET_LARGE, "v2"),
            ("cli-fail", FAILING, "v1"),
        ):
            path = tmp / f"{name}-{version}.yaml"
            path.write_text(source, encoding="utf-8")
            assert (
                main(
                    ["apply", "--url", url, "--api-key", ADMIN_KEY, str(path), "--version", version]
                )
                == 0
            )
            assert main(["promote", "--url", url, "--api-key", ADMIN_KEY, name, "v1"]) == 0
        yield url


def cli(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    """``rollgraph ARGS`` against ``url``; the options go after the (sub)command's name."""
    capsys.readouterr()
    split = 2 if args[0] in TWO_WORDS else 1
    code = main([*args[:split], "--url", url, "--api-key", ADMIN_KEY, *args[split:]])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_run_wait_and_runs_follow_stream_progress_until_the_end(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, server, "run", "greet", "--input", "prompt=hi", "--wait")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("run ") and lines[0].split()[-1] in ("queued", "running")
    # Each node's transitions as they happen: `write` ran, then succeeded (with its cost).
    assert any(x.startswith("  write: succeeded") for x in lines), lines
    run_id = lines[0].split()[1]
    assert f"run {run_id}  attempt 1  succeeded" in lines  # the change, then the summary
    assert any(x.startswith(f"run {run_id}  greet v1  succeeded  (") for x in lines), lines
    assert lines[-1].startswith("  text: ")  # the outputs
    code, out, _ = cli(capsys, server, "runs", "follow", run_id)
    assert code == 0 and "  write: succeeded" in out
    # A failed run: exit 1, and with --json one event per line, the last the run itself.
    code, out, _ = cli(capsys, server, "run", "cli-fail", "--wait", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [e["event"] for e in events][-1] == "end" and events[-1]["run"]["status"] == "failed"
    assert events[0]["event"] == "run" and events[0]["attempt"] == 1
    ended = {e["node"]: e["state"] for e in events if e["event"] == "step"}
    assert ended == {"note": "succeeded", "api": "failed"}
    assert all(e["attempt"] == 1 and "cost_usd" in e for e in events if e["event"] == "step")
    failed = events[-1]["run"]["run_id"]
    code, out, _ = cli(capsys, server, "resume", failed, "--wait")
    lines = out.splitlines()
    assert code == 1 and f"run {failed}  attempt 2  failed" in lines
    # Steps are the new attempt's (never the failed attempt's while it runs).
    api_failed = [i for i, x in enumerate(lines) if x.startswith("  api: failed")]
    assert lines.index(f"run {failed}  attempt 2  failed") < api_failed[-1]
    code, _, err = cli(capsys, server, "runs", "follow", "no-such-run")
    assert code == 1 and "[not_found]" in err


@pytest.mark.slow
def test_follow_prints_a_node_running_then_its_end_and_json_one_event_per_change(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # v2's model takes about a second: long enough to be seen running.
    args = ("run", "greet", "--version", "v2", "--input", "prompt=hi", "--wait")
    code, out, err = cli(capsys, server, *args, "--interval", "0.05")
    assert code == 0, err
    lines = out.splitlines()
    ended = [x for x in lines if x.startswith("  write: succeeded  $")]
    assert "  write: running" in lines and len(ended) == 1, lines
    assert lines.index("  write: running") < lines.index(ended[0])
    code, out, err = cli(capsys, server, *args, "--interval", "0.05", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    steps = [(e["node"], e["state"]) for e in events if e["event"] == "step"]
    assert ("write", "running") in steps and steps[-1] == ("write", "succeeded"), events
    changes = [e["status"] for e in events if e["event"] == "run"]
    assert changes[-1] == "succeeded" and events[-1]["event"] == "end"
    assert events[-1]["run"]["cost_usd"] > 0


@pytest.mark.slow
def test_runs_list_filters_and_schema_errors_name_the_field(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, server, "run", "greet", "--input", "prompt=a")[0] == 0
    assert cli(capsys, server, "run", "cli-fail")[0] == 1
    code, out, _ = cli(capsys, server, "runs", "list", "--workflow", "greet", "--json")
    listed = json.loads(out)
    assert code == 0 and listed and {r["workflow"] for r in listed} == {"greet"}
    code, out, _ = cli(capsys, server, "runs", "list", "--status", "failed", "--mode", "sync")
    assert code == 0 and out and all(" sync  failed " in line for line in out.splitlines())
    code, out, _ = cli(capsys, server, "runs", "list", "--workflow", "greet", "--limit", "1")
    assert len(out.splitlines()) == 1
    code, out, _ = cli(capsys, server, "runs", "list", "--since", "2999-01-01T00:00:00Z")
    assert (code, out) == (0, "")
    code, _, err = cli(capsys, server, "runs", "list", "--since", "yesterday")
    assert code == 1
    assert "the request does not match the schema [invalid_request]" in err
    assert "  query since: Input should be a valid datetime" in err
    code, _, err = cli(capsys, server, "run", "greet", "--label", "1-bad", "--input", "prompt=a")
    assert code == 1 and "  label: String should match pattern" in err
    code, _, err = cli(capsys, server, "runs", "list", "--limit", "0")
    assert code == 1 and "  query limit: Input should be greater than or equal to 1" in err


@pytest.mark.slow
def test_idempotency_key_runs_once_and_answers_the_first_run(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = f"cli-{secrets.token_hex(4)}"
    args = ("run", "greet", "--input", "prompt=once", "--user", key, "--json")
    first = json.loads(cli(capsys, server, *args, "--idempotency-key", key)[1])
    again = json.loads(cli(capsys, server, *args, "--idempotency-key", key)[1])
    assert again["run_id"] == first["run_id"]
    code, out, _ = cli(capsys, server, "runs", "list", "--workflow", "greet", "--json")
    assert [r["user_id"] for r in json.loads(out)].count(key) == 1
    code, _, err = cli(
        capsys, server, "run", "greet", "--input", "prompt=other", "--idempotency-key", key
    )
    assert code == 1 and "[idempotency_key_reused]" in err


@pytest.mark.slow
def test_resume_with_an_idempotency_key_answers_the_first_resume(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = json.loads(cli(capsys, server, "run", "cli-fail", "--json")[1])["run_id"]
    key = f"resume-{secrets.token_hex(4)}"
    answers = [
        cli(capsys, server, "resume", failed, "--idempotency-key", key, "--json") for _ in "12"
    ]
    assert [(code, json.loads(out)["attempt"]) for code, out, _ in answers] == [(1, 2), (1, 2)]
    replayed = httpx.post(
        f"{server}/v1/runs/{failed}/resume",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": key},
    )
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert replayed.json()["attempt"] == 2
    # Without the key the failed run is resumed again; the key with another request is a 422.
    code, out, _ = cli(capsys, server, "resume", failed, "--json")
    assert (code, json.loads(out)["attempt"]) == (1, 3)
    code, _, err = cli(capsys, server, "resume", failed, "--async", "--idempotency-key", key)
    assert code == 1 and "[idempotency_key_reused]" in err


@pytest.mark.slow
def test_outcome_parses_booleans_and_numbers(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = json.loads(cli(capsys, server, "run", "greet", "--input", "prompt=o", "--json")[1])[
        "run_id"
    ]
    code, out, _ = cli(capsys, server, "outcome", run_id, "clicked=true", "rating=4.5", "stars=3")
    assert code == 0
    assert out.splitlines() == [
        f"run {run_id}",
        "  clicked: recorded",
        "  rating: recorded",
        "  stars: recorded",
    ]
    code, out, _ = cli(capsys, server, "outcome", run_id, "clicked=TRUE", "--json")
    assert (code, json.loads(out)) == (0, {"run_id": run_id, "metrics": {"clicked": "unchanged"}})
    code, _, err = cli(capsys, server, "outcome", run_id, "clicked=false")
    assert code == 1 and "[conflict]" in err
    for bad, says in (
        ("clicked=maybe", "expected true, false or a number, got 'maybe'"),
        ("x", "write METRIC=VALUE"),
        ("r=nan", "got 'nan'"),
    ):
        with pytest.raises(SystemExit) as exited:
            cli(capsys, server, "outcome", run_id, bad)
        assert exited.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.slow
def test_versions_archive(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    ran = json.loads(
        cli(capsys, server, "run", "greet", "--version", "v2", "--input", "prompt=a", "--json")[1]
    )
    code, out, _ = cli(capsys, server, "versions", "archive", "greet", "v2")
    assert code == 0 and out.startswith("greet v2 ") and " archived " in out
    code, out, _ = cli(capsys, server, "versions", "greet", "--json")
    assert {v["version"]: v["status"] for v in json.loads(out)} == {
        "v1": "active",
        "v2": "archived",
    }
    code, _, err = cli(capsys, server, "run", "greet", "--version", "v2", "--input", "prompt=a")
    assert code == 1 and "archived" in err and "[conflict]" in err
    code, out, _ = cli(capsys, server, "trace", ran["run_id"])  # its runs stay readable
    assert code == 0 and "write" in out
    code, _, err = cli(capsys, server, "versions", "archive", "greet", "v1")  # prod points at it
    assert code == 1 and "[conflict]" in err
    code, _, err = cli(capsys, server, "versions", "greet", "v1")
    assert code == 2 and "archive NAME VERSION" in err


@pytest.mark.slow
def test_json_on_the_answers(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "greet.yaml"
    source.write_text(GREET, encoding="utf-8")
    cases: list[tuple[tuple[str, ...], Callable[[Any], bool] | None]] = [
        (("apply", str(source), "--version", "v1"), lambda j: j["created"] is False),
        (("diff", "greet", "v1", "v2"), lambda j: j["a"] == "v1" and "text" in j),
        (("promote", "greet", "v1"), lambda j: j["version"] == "v1"),
        (("rollout", "status", "greet"), lambda j: j["baseline"] == "v1"),
        (("keys", "list"), lambda j: isinstance(j, list)),
        (("audit", "--limit", "2"), lambda j: len(j) == 2),
        (("experiment", "list"), lambda j: j == []),
        (("trace", "no-such"), None),
    ]
    for args, check in cases:
        code, out, err = cli(capsys, server, *args, "--json")
        if check is None:
            assert code == 1 and out == "" and "[not_found]" in err
        else:
            assert code == 0 and check(json.loads(out)), (args, out)


@pytest.fixture
def silent_server() -> Iterator[tuple[str, list[bytes]]]:
    """A server that reads each request and never answers (a run that outlives the wait)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    received: list[bytes] = []
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            received.append(conn.recv(65536))

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_run_without_an_answer_says_it_may_have_completed(
    silent_server: tuple[str, list[bytes]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = silent_server
    monkeypatch.setenv("ROLLGRAPH_RUN_DEADLINE_S", "0.2")
    monkeypatch.setenv("ROLLGRAPH_RUN_STORE_MARGIN_S", "0.2")
    code, _, err = cli(capsys, url, "run", "greet", "--timeout", "0.1", "--input", "prompt=a")
    assert code == 3
    assert "no answer from" in err and "within 0.4 s after the request was sent" in err
    assert "the run may have completed (and been billed)" in err
    assert "rollgraph run greet ... --idempotency-key rgc-" in err
    assert "rollgraph runs list --workflow greet" in err
    assert "cannot reach" not in err and "rollgraph serve" not in err
    assert len(received) == 1  # a read timeout is not retried: the deadline has passed
    assert b"idempotency-key: rgc-" in received[0].lower()
    code, _, err = cli(capsys, url, "run", "greet", "--idempotency-key", "mine", "--timeout", "0.1")
    assert code == 3 and "--idempotency-key mine" in err
    code, _, err = cli(capsys, url, "resume", "r1", "--timeout", "0.1")
    assert code == 3 and "rollgraph resume r1 --idempotency-key rgc-" in err
    code, _, err = cli(capsys, url, "runs", "list", "--timeout", "0.1")
    assert code == 3 and "within 0.1 s" in err and "may have been carried out" in err
