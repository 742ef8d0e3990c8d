"""A resume is a new attempt: the simulator's transient failures are drawn afresh (a run that
failed on one can succeed when resumed), while a fresh run with the same seed replays exactly;
``rollgraph exec --resume`` of a run its cache never saw is an error, not a fresh run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import engine
from control_plane.cli.main import main
from engine.providers import SimProvider
from tests.fixtures import app_client, seed_workflow

# No retries: the first simulated rate limit or server error fails the run.
FLAKY = """
name: flaky
nodes:
  write:
    uses: llm.generate
    with: {model: sim/writer-small, prompt: "a red sneaker"}
    retry: {max_attempts: 1}
outputs:
  text: "${write.text}"
"""


def _flaky_engine() -> engine.Engine:
    return engine.Engine(
        providers=[SimProvider(time_scale=0, failure_rate=0.5)], cache=engine.MemoryStepCache()
    )


def _first_failing_seed(eng: engine.Engine, wf: engine.Workflow) -> int:
    for seed in range(64):
        if not asyncio.run(eng.run(wf, seed=seed)).ok:
            return seed
    raise AssertionError("no seed in 0..63 fails at a 50 % failure rate")


def test_a_resume_draws_transient_failures_afresh_and_a_fresh_run_replays() -> None:
    eng = _flaky_engine()
    wf = eng.define(FLAKY)
    seed = _first_failing_seed(eng, wf)

    async def go() -> tuple[list[engine.RunResult], list[engine.RunResult]]:
        first = await eng.run(wf, seed=seed, run_id="flaky-run")
        replays = [await eng.run(wf, seed=seed) for _ in range(3)]
        resumes = [first]
        for attempt in range(2, 12):
            resumes.append(await eng.resume(wf, "flaky-run", seed=seed, run_attempt=attempt))
            if resumes[-1].ok:
                break
        return replays, resumes

    replays, resumes = asyncio.run(go())
    first = resumes[0]
    assert first.trace.error_code in {"rate_limited", "server_error"}
    # The same seed, attempt 1: the same failure, every time.
    assert [r.trace.error for r in replays] == [first.trace.error] * 3
    assert resumes[-1].ok, [r.trace.error for r in resumes]
    # Each attempt draws reproducibly: the same attempt number gives the same outcome.
    again = asyncio.run(eng.resume(wf, "flaky-run", seed=seed, run_attempt=len(resumes)))
    assert again.ok


def test_an_attempts_seed_is_the_runs_for_the_first_attempt_only() -> None:
    assert engine.engine.attempt_seed(42, 1) == 42
    assert engine.engine.attempt_seed(42, 2) != 42
    assert engine.engine.attempt_seed(42, 2) == engine.engine.attempt_seed(42, 2)
    assert engine.engine.attempt_seed(42, 2) != engine.engine.attempt_seed(42, 3)


def test_exec_resume_of_an_unknown_run_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLAKY.replace("failure", ""), encoding="utf-8")
    cache = tmp_path / "steps.db"
    code = main(["exec", str(flow), "--cache", str(cache), "--resume", "f" * 32])
    out, err = capsys.readouterr()
    assert code == 2
    assert "no run 'ffffffffffffffffffffffffffffffff'" in err
    assert out == ""


def test_exec_resume_of_a_known_run_counts_its_attempts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLAKY, encoding="utf-8")
    cache = tmp_path / "steps.db"
    common = [str(flow), "--cache", str(cache), "--time-scale", "0", "--json"]
    main(["exec", *common])
    import json

    run_id = json.loads(capsys.readouterr().out)["run_id"]
    code = main(["exec", *common, "--resume", run_id])
    resumed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert resumed["run_id"] == run_id
    assert resumed["trace"]["resumed"] is True


@pytest.fixture
def flaky_api(database_url: str, admin_key: str) -> Any:
    factory = lambda: engine.Engine(  # noqa: E731
        providers=[SimProvider(time_scale=0, failure_rate=0.5)]
    )
    with app_client(database_url, admin_key, run_engine=factory) as client:
        seed_workflow(client, "flaky", {"v1": FLAKY}, {"prod": "v1"})
        yield client


def test_a_transiently_failed_run_resumed_through_the_api_can_succeed(
    flaky_api: TestClient,
) -> None:
    for _ in range(40):
        run = flaky_api.post("/v1/run", json={"workflow": "flaky"}).json()
        if run["status"] == "failed":
            break
    assert run["status"] == "failed", run
    for _ in range(20):  # at 50 % each, twenty failed resumes in a row: about 1e-6
        resumed = flaky_api.post(f"/v1/runs/{run['run_id']}/resume").json()
        if resumed["status"] == "succeeded":
            break
    assert resumed["status"] == "succeeded", resumed
    assert resumed["attempt"] >= 2
