"""The CLI against a real `rollgraph serve` process: apply, versions, promote, rollback, diff,
rollouts with several candidates, API keys and the audit log."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from control_plane.cli import main
from tests.fixtures import EXAMPLES, GREET
from tests.processes import free_port

# The server's settings admin key (`bootstrap-admin`), handed over as ROLLGRAPH_ADMIN_KEY.
ADMIN_KEY = "rgk" + secrets.token_urlsafe(32)  # never "-…", which a CLI reads as an option


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, serve: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    db = tmp_path_factory.mktemp("serve") / "rollgraph.db"
    env = {
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{db}",
        "ROLLGRAPH_ENV": "dev",
        "ROLLGRAPH_ADMIN_KEY": ADMIN_KEY,
    }
    with serve(env) as url:
        yield url


def cli(
    capsys: pytest.CaptureFixture[str], url: str, *args: str, key: str | None = ADMIN_KEY
) -> tuple[int, str, str]:
    """``rollgraph ARGS`` against ``url``; the options go after the (sub)command's name."""
    split = 2 if args[0] in ("keys", "experiment", "shadow") else 1
    options = ["--url", url] + (["--api-key", key] if key is not None else [])
    code = main([*args[:split], *options, *args[split:]])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_apply_promote_rollback_and_diff_through_the_cli(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, server, "apply", str(EXAMPLES / "v3.2.yaml"))
    assert code == 0
    assert "product-video v3.2 created" in out
    assert cli(capsys, server, "apply", str(EXAMPLES / "v3.3.yaml"))[0] == 0
    code, out, _ = cli(capsys, server, "apply", str(EXAMPLES / "v3.2.yaml"))
    assert code == 0
    assert "unchanged" in out
    assert cli(capsys, server, "promote", "product-video", "v3.2")[1].strip() == (
        "product-video prod → v3.2"
    )
    cli(capsys, server, "promote", "product-video", "v3.3")
    code, out, _ = cli(capsys, server, "rollback", "product-video")
    assert code == 0
    assert out.strip().endswith("→ v3.2")
    code, out, _ = cli(capsys, server, "versions", "product-video")
    assert code == 0
    assert "v3.2" in out
    assert "[prod]" in out
    code, out, _ = cli(capsys, server, "diff", "product-video", "v3.2", "v3.3")
    assert code == 0
    assert "nodes added: " in out
    assert "+++" in out


@pytest.mark.slow
def test_cli_errors_are_messages_not_tracebacks(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((EXAMPLES / "v3.2.yaml").read_text().replace("enhance.text", "enhance.txt"))
    code, _, err = cli(capsys, server, "apply", str(broken))
    assert code == 1
    assert "did you mean enhance.text?" in err
    assert "line " in err
    code, _, err = cli(capsys, server, "versions", "no-such-workflow")
    assert code == 1
    assert "[not_found]" in err
    code, _, err = cli(capsys, f"http://127.0.0.1:{free_port()}", "versions", "x")
    assert code == 2
    assert "rollgraph serve" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_keys_and_audit_through_the_cli(
    server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLGRAPH_API_KEY", raising=False)
    code, _, err = cli(capsys, server, "versions", "product-video", key=None)
    assert code == 1
    assert "[unauthorized]" in err
    assert "--api-key" in err
    code, out, err = cli(capsys, server, "keys", "create", "ci-runner", "--role", "runner")
    assert code == 0
    runner_key = out.strip()
    assert runner_key.startswith("rg_")
    assert "shown this once" in err
    # The runner reads, but cannot promote; the environment variable carries the key too.
    monkeypatch.setenv("ROLLGRAPH_API_KEY", runner_key)
    assert main(["versions", "--url", server, "no-such-workflow"]) == 1
    assert "[not_found]" in capsys.readouterr().err
    code, _, err = cli(capsys, server, "promote", "product-video", "v3.2", key=runner_key)
    assert code == 1
    assert "[forbidden]" in err
    code, out, _ = cli(capsys, server, "keys", "list")
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("ci-runner"))
    assert "runner" in line and "active" in line
    assert runner_key not in out
    code, out, _ = cli(capsys, server, "keys", "revoke", "ci-runner")
    assert (code, out.split()[:2]) == (0, ["ci-runner", "revoked"])
    code, _, err = cli(capsys, server, "versions", "product-video", key=runner_key)
    assert (code, "revoked" in err) == (1, True)
    code, out, _ = cli(capsys, server, "audit", "--target-kind", "api_key")
    assert code == 0
    lines = out.splitlines()
    assert "key.revoke" in lines[0] and "key.create" in lines[1]
    assert all("bootstrap-admin" in x for x in lines)


ROLLOUT_WF = GREET.replace("name: greet", "name: cli-rollout")


def rollout(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    """``rollgraph rollout ARGS`` against ``url``: the options go after ``set``/``status``."""
    code = main(["rollout", args[0], "--url", url, "--api-key", ADMIN_KEY, *args[1:]])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_rollout_set_with_several_candidates_through_the_cli(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for version in ("v1", "v2", "v3"):  # three different definitions: three versions
        path = tmp_path / f"{version}.yaml"
        path.write_text(ROLLOUT_WF.replace("${inputs.prompt}", f"{version}: ${{inputs.prompt}}"))
        assert cli(capsys, server, "apply", str(path), "--version", version)[0] == 0
    assert cli(capsys, server, "promote", "cli-rollout", "v1")[0] == 0
    code, out, err = rollout(capsys, server, "set", "cli-rollout", "v2", "10", "v3", "5")
    assert code == 0, err
    assert out.strip() == "cli-rollout prod: baseline v1, v2 10%, v3 5%"
    code, out, _ = rollout(capsys, server, "status", "cli-rollout")
    assert (code, out.strip()) == (0, "cli-rollout prod: baseline v1, v2 10%, v3 5%")
    # One pair is the shorthand, as it always was: it replaces the whole list.
    code, out, _ = rollout(capsys, server, "set", "cli-rollout", "v3", "7.5")
    assert (code, out.strip()) == (0, "cli-rollout prod: baseline v1, v3 7.5%")
    # The server's validation reaches the user with what to fix, exit 1.
    code, _, err = rollout(capsys, server, "set", "cli-rollout", "v2", "60", "v3", "50")
    assert code == 1
    assert "[invalid_request]" in err
    assert "sum to 110 (v2 60 + v3 50)" in err
    code, _, err = rollout(capsys, server, "set", "cli-rollout", "v2", "1", "v2", "2")
    assert (code, "'v2' is listed more than once" in err) == (1, True)
    code, _, err = rollout(capsys, server, "set", "cli-rollout", "v2", "1", "v1", "2")
    assert (code, "[conflict]" in err) == (1, True)
    # Usage errors are argparse's: exit 2, nothing sent.
    for args, says in (
        (("v2", "10", "v3"), "give VERSION PERCENT pairs, got 3 value(s)"),
        (("v2", "ten"), "percent of v2 must be a number, got 'ten'"),
        ((), "the following arguments are required: VERSION PERCENT"),
    ):
        with pytest.raises(SystemExit) as exited:
            rollout(capsys, server, "set", "cli-rollout", *args)
        assert exited.value.code == 2, args
        assert says in capsys.readouterr().err, args
    code, out, _ = rollout(capsys, server, "status", "cli-rollout")
    assert (code, out.strip()) == (0, "cli-rollout prod: baseline v1, v3 7.5%")
    code, out, _ = rollout(capsys, server, "set", "cli-rollout", "v3", "0")
    assert (code, out.strip()) == (0, "cli-rollout prod: baseline v1, no rollout")


@pytest.mark.slow
def test_assign_previews_a_users_version_through_the_cli(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = "cli-assign"
    for version in ("v1", "v2"):
        path = tmp_path / f"{version}.yaml"
        text = GREET.replace("name: greet", f"name: {name}")
        path.write_text(text.replace("${inputs.prompt}", f"{version}: ${{inputs.prompt}}"))
        assert cli(capsys, server, "apply", str(path), "--version", version)[0] == 0
    assert cli(capsys, server, "promote", name, "v1")[0] == 0
    assert rollout(capsys, server, "set", name, "v2", "100")[0] == 0
    code, out, err = cli(capsys, server, "assign", name, "--user", "ada")
    assert code == 0, err
    first, why = out.strip().splitlines()
    assert first.startswith("v2  (rollout bucket ")
    assert "so the user gets a candidate" in why
    code, out, _ = cli(capsys, server, "assign", name, "--user", "ada", "--json")
    body = json.loads(out)
    assert (code, body["version"], body["source"], body["user_id"]) == (0, "v2", "rollout", "ada")
    code, _, err = cli(capsys, server, "assign", name, "--user", "ada", "--label", "nope")
    assert code == 1 and "[not_found]" in err and "nope" in err
    with pytest.raises(SystemExit) as exited:
        cli(capsys, server, "assign", name)
    assert exited.value.code == 2
    assert "--user" in capsys.readouterr().err


def test_shadow_start_show_stop_through_the_cli(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = "cli-shadow"
    for version in ("v1", "v2"):
        path = tmp_path / f"{version}.yaml"
        text = GREET.replace("name: greet", f"name: {name}")
        path.write_text(text.replace("${inputs.prompt}", f"{version}: ${{inputs.prompt}}"))
        assert cli(capsys, server, "apply", str(path), "--version", version)[0] == 0
    assert cli(capsys, server, "promote", name, "v1")[0] == 0
    start = ("shadow", "start", name, "v2", "--percent", "100", "--max-cost-per-hour", "5")
    code, out, err = cli(capsys, server, *start)
    assert code == 0, err
    assert out.startswith(f"shadowing started: {name}:prod  served v1  shadow v2 100 % of users")
    for user in ("ada", "bob", "cy"):
        code, _, err = cli(capsys, server, "run", name, "--input", "prompt=hi", "--user", user)
        assert code == 0, err
    code, out, err = cli(capsys, server, "shadow", "show", name)
    assert code == 0, err
    assert ("[running]" in out and "McNemar's exact test" not in out) or "success" in out
    assert "\nverdict: " in out and "latency_s" in out and "cost_usd" in out
    code, out, _ = cli(capsys, server, "shadow", "show", name, "--json")
    body = json.loads(out)
    assert (code, body["shadow"]["version"], body["comparison"]["shadow_version"]) == (
        0,
        "v2",
        "v2",
    )
    assert {m["metric"] for m in body["comparison"]["metrics"]} >= {"success", "cost_usd"}
    code, out, err = cli(capsys, server, "shadow", "stop", name, "--json")
    assert code == 0 and json.loads(out)["active"] is False, err
    code, _, err = cli(capsys, server, "shadow", "stop", name)
    assert code == 1 and "[not_found]" in err
    bad = ("shadow", "start", name, "v2", "--percent", "nan", "--max-cost-per-hour", "5")
    with pytest.raises(SystemExit) as exited:  # refused before anything is sent
        cli(capsys, server, *bad)
    assert exited.value.code == 2 and "finite" in capsys.readouterr().err


@pytest.mark.slow
def test_async_runs_trace_and_resume_through_the_cli(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fetch = tmp_path / "fetch.yaml"
    fetch.write_text(
        "name: cli-fetch\n"
        "nodes:\n"
        "  note:\n"
        "    uses: template\n"
        "    with: {text: ready}\n"
        "  api:\n"
        "    uses: http.json\n"
        '    with: {url: "https://not-allowed.example/${note.text}"}\n'
        "outputs:\n"
        '  body: "${api.body}"\n',
        encoding="utf-8",
    )
    assert cli(capsys, server, "apply", str(fetch))[0] == 0
    assert cli(capsys, server, "promote", "cli-fetch", "v1")[0] == 0

    code, out, _ = cli(capsys, server, "run", "cli-fetch", "--async", "--json")
    assert code == 0
    accepted = json.loads(out)
    assert (accepted["mode"], accepted["status"]) == ("async", "running")
    for _ in range(200):
        code, out, _ = cli(capsys, server, "trace", accepted["run_id"])
        if "no trace yet" not in out:
            break
        time.sleep(0.05)
    assert code == 0 and "api" in out  # the waterfall names the nodes

    code, out, _ = cli(capsys, server, "run", "cli-fetch")
    assert code == 1 and "rollgraph resume" in out
    run_id = out.split()[1]
    code, out, _ = cli(capsys, server, "resume", run_id, "--json")
    assert code == 1  # the host is still not allowed: failed again, as attempt 2
    resumed = json.loads(out)
    assert (resumed["run_id"], resumed["attempt"], resumed["status"]) == (run_id, 2, "failed")
    code, _, err = cli(capsys, server, "resume", "no-such-run")
    assert code == 1 and "[not_found]" in err


@pytest.mark.slow
def test_experiments_through_the_cli(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from control_plane.client import SyncClient

    for version in ("v1", "v2"):
        source = tmp_path / f"{version}.yaml"
        source.write_text(
            "name: cli-exp\nnodes:\n  say:\n    uses: template\n"
            f"    with: {{text: {version}}}\noutputs:\n  text: ${{say.text}}\n",
            encoding="utf-8",
        )
        assert cli(capsys, server, "apply", str(source))[0] == 0
    assert cli(capsys, server, "promote", "cli-exp", "v1")[0] == 0
    spec = tmp_path / "experiment.yaml"
    spec.write_text(
        "workflow: cli-exp\ncandidates: [{version: v2, percent: 50}]\n"
        "primary: {name: clicked, kind: proportion, direction: increase, mde: 0.1}\n"
        "min_runs_per_arm: 5\n",
        encoding="utf-8",
    )
    code, out, _ = cli(capsys, server, "experiment", "start", str(spec))
    assert code == 0 and out.startswith("experiment ")
    experiment_id = out.split()[1]
    with SyncClient(server, ADMIN_KEY) as client:
        for i in range(40):
            ran = client.run("cli-exp", {}, user_id=f"u{i}")
            client.outcome(ran.run_id, {"clicked": i % 3 == 0})
    code, out, _ = cli(capsys, server, "experiment", "status", experiment_id)
    assert code == 0
    assert "clicked" in out and "decision: " in out and "baseline v1" in out
    code, out, _ = cli(capsys, server, "experiment", "list", "--status", "running")
    assert experiment_id in out
    assert cli(capsys, server, "experiment", "stop", experiment_id)[1].endswith("stopped\n")
    # A halt is visible in the CLI, and a person resumes it there.
    spec.write_text(spec.read_text(encoding="utf-8") + "no_traffic_timeout_s: 0.001\n")
    halting = cli(capsys, server, "experiment", "start", str(spec))[1].split()[1]
    evaluated = httpx.post(
        f"{server}/v1/experiments/{halting}/evaluate",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert evaluated.json()["applied"] == "halt", evaluated.text
    code, out, _ = cli(capsys, server, "experiment", "status", halting)
    assert code == 0 and "[halted]" in out and "decision: halt → halt" in out
    assert "[no_traffic]" in out
    assert halting in cli(capsys, server, "experiment", "list", "--status", "halted")[1]
    code, out, _ = cli(capsys, server, "experiment", "resume", halting)
    assert (code, out) == (0, f"experiment {halting} running (acknowledged: no_traffic)\n")
    assert cli(capsys, server, "experiment", "stop", halting)[1].endswith("stopped\n")
    code, _, err = cli(capsys, server, "experiment", "start", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err
