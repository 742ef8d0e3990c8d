"""One scenario driven through the public client, from its example files to its ending: apply
the versions, put the label on the baseline, start the experiment, then batch after batch let
the simulated users in and evaluate at once, until the experiment rolls back or promotes (or
:data:`MAX_USERS`). :func:`run_scenario` prints as it goes and returns the :class:`Ending`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TextIO

import httpx
import yaml

from control_plane.client import ApiError, SyncClient
from demos.experiments.report import (
    BatchTable,
    ending_lines,
    experiment_lines,
    heading,
    is_rate,
    users_line,
)
from demos.experiments.scenarios import BASELINE_FILE, EXAMPLES, DemoError, Ending, Scenario
from demos.experiments.users import BATCH, visit_batch

__all__ = ["MAX_USERS", "run_scenario"]

MAX_USERS: Final = 8_000  # per scenario: 4,000 once fell short for the better candidate (CI)


def run_scenario(
    client: SyncClient,
    scenario: Scenario,
    number: int,
    *,
    seed: int = 7,
    workers: int = 8,
    users_client: Callable[[], SyncClient] | None = None,
    examples: Path = EXAMPLES,
    out: TextIO | None = None,
) -> Ending:
    """Set up, start and drive one experiment until it ends (or ``MAX_USERS``), printing as it
    goes. ``users_client`` gives the client of the calling thread for the users' requests."""
    stream = out or sys.stdout
    users_client = users_client or (lambda: client)

    def say(line: str = "") -> None:
        print(line, file=stream, flush=True)

    body = _load_yaml(examples / "experiments" / scenario.experiment_file)
    workflow, label = str(body["workflow"]), str(body.get("label", "prod"))
    baseline = _apply(client, examples / BASELINE_FILE)
    # If these contents are already stored under another name, that name is the candidate.
    candidate = body["candidate"] = _apply(client, examples / scenario.candidate_file)
    body["label"] = label
    for line in heading(number, scenario, candidate):
        say(line)
    for line in _prepare(client, workflow, label, baseline):
        say(f"   {line}")
    label_before = _label_version(client, workflow, label)
    say(users_line(scenario, baseline, candidate))
    eid = client.experiment_start(body).id
    for line in experiment_lines(eid, body, baseline, candidate):
        say(line)
    say()
    metric = scenario.watch
    table = BatchTable(baseline, candidate, metric, is_rate(body, metric), body["ramp"])
    say(table.header())
    users = 0
    evaluation: dict[str, Any] = {}
    ended = False
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-user")
    try:
        while users < MAX_USERS:
            visit_batch(pool, users_client, scenario, body, number, users, seed)
            users += BATCH
            evaluation = _evaluate(client, eid)
            say(table.row(users // BATCH, users, evaluation))
            if evaluation["applied"] in ("rollback", "promote"):
                ended = True
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if not ended:  # failed, interrupted or undecided: free the label for the next demo
            with contextlib.suppress(ApiError, httpx.HTTPError):
                client.experiment_stop(eid)
    # The report renders the API's JSON, as the CLI does (``render_results``).
    results = client.experiment_results(eid).model_dump(mode="json")
    status = results["experiment"]["status"]
    label_after = _label_version(client, workflow, label)
    for line in ending_lines(
        eid, users, evaluation, results, candidate, label, label_before, label_after
    ):
        say(line)
    return Ending(scenario, eid, status, users, baseline, candidate, label_before, label_after)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DemoError(f"cannot read {path}: {exc}") from exc
    if not isinstance(body, dict):
        raise DemoError(f"{path} must hold a mapping")
    return body


def _apply(client: SyncClient, path: Path) -> str:
    """Apply a version file; the version's name (an identical version's, if there is one)."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoError(f"cannot read {path}: {exc}") from exc
    return client.apply(source).version


def _label_version(client: SyncClient, workflow: str, label: str) -> str | None:
    return next((x.version for x in client.labels(workflow) if x.name == label), None)


def _prepare(client: SyncClient, workflow: str, label: str, baseline: str) -> list[str]:
    """Put the label on the baseline with no experiment running on it (one that an interrupted
    demo left behind is stopped); what was done, in words."""
    done = []
    for status in ("running", "halted"):  # a halted one owns the label's traffic too
        for e in client.experiments(workflow=workflow, status=status):
            if e.label == label:
                client.experiment_stop(e.id)
                done.append(f"stopped experiment {e.id}, left {status} on {workflow}:{label}")
    if _label_version(client, workflow, label) != baseline:
        client.promote(workflow, baseline, label=label)
        done.append(f"label {label} → {baseline}")
    return done


def _evaluate(client: SyncClient, experiment_id: int) -> dict[str, Any]:
    """Apply the experiment's rules now. On another server, its background evaluator may have
    ended the experiment first: then the decision that ended it. As the API's JSON, which the
    report renders."""
    try:
        return client.experiment_evaluate(experiment_id).model_dump(mode="json")
    except ApiError as exc:
        if exc.status != 409:  # 409: the experiment is no longer running
            raise
    decisions = client.experiment_decisions(experiment_id)
    ended = next((d for d in decisions if d.applied in ("rollback", "promote")), None)
    if ended is None:
        raise DemoError(f"experiment {experiment_id} was ended outside the demo (stopped by hand?)")
    return ended.model_dump(mode="json")
