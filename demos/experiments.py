"""``make demo``: two experiments on simulated users, from the first batch to their ending.

    python -m demos.experiments               # the server at ROLLGRAPH_URL, or its own
    python -m demos.experiments --own-server  # its own even when a server answers

Both run on the ``demo`` label of product-video, so ``prod`` (v3.2 with v3.3 at 10 %, as ``make
run`` sets it up) is never touched and the demo can run again and again on the same server:

1. **rollback**: ``v3.2-noretry`` (v3.2 with retries turned off) fails about 6 % of its runs,
   where v3.2's retries leave almost no failure. The experiment ramps it 10 → 25 → 50 % while
   the evidence on the ``success`` guardrail builds up, until the regression is significant and
   the experiment rolls itself back; the label stays on v3.2.
2. **promotion**: ``v3.2-writer-large`` (the larger writer) converts 32 % of its users where
   v3.2 converts 20 %, fails as rarely and costs about the same; at the last ramp step the gain
   is significant and the experiment moves the label to it (``auto_promote``).

Each batch, new users run the workflow through the label (the experiment assigns each one an
arm) and report whether they converted; then ``POST /v1/experiments/{id}/evaluate`` applies the
experiment's rules at once, rather than at the background evaluator's next tick, so the demo is
fast and each line shows what one decision saw. The versions and experiments are example files:
``examples/product-video/v3.2-*.yaml`` and ``examples/product-video/experiments/``.

The users are the demo's own seeded draws (``--seed``): the prompt each sends and whether it
converts. The server draws the rest (the experiment's assignment salt, the run ids that seed the
simulator), so the counts differ from one demo to the next; the endings do not (see
``SCENARIOS`` for why).

When nothing answers at ``ROLLGRAPH_URL`` (default http://127.0.0.1:8000) the demo starts its
own server in this process, on a free loopback port, with a temporary SQLite database and a
simulator that does not sleep, and stops it at the end. Against another server it uses
``ROLLGRAPH_API_KEY`` (default: the development admin key). Exit status 0 when both scenarios
end as intended, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import httpx
import yaml

from control_plane.cli.experiments import render_results
from control_plane.client import ApiError, Client
from control_plane.experiments.schemas import BUILTIN_METRICS
from control_plane.settings import DEV_ADMIN_KEY

__all__ = ["SCENARIOS", "Ending", "Scenario", "main", "own_server", "run_scenario"]

DEFAULT_URL: Final = "http://127.0.0.1:8000"
EXAMPLES: Final = Path(__file__).resolve().parent.parent / "examples" / "product-video"
BASELINE_FILE: Final = "v3.2.yaml"
BATCH: Final = 100  # users per batch: one evaluation, one line
MAX_USERS: Final = 4_000  # per scenario: twice what either needed in 1,000 simulations
PROMPTS: Final = (
    "a red sneaker on a rainy street",
    "a steel water bottle on a mountain trail",
    "a linen shirt in a sunlit loft",
    "wireless earbuds on a café table",
    "a ceramic mug of morning coffee",
    "a leather backpack at a train station",
    "a desk lamp in a quiet study",
    "a yoga mat on a beach at dawn",
)


@dataclass(frozen=True)
class Scenario:
    """One experiment of the demo and the ending it should reach.

    ``conversion`` is how the simulated users behave: the chance that a user served by the
    ``baseline`` or the ``candidate`` converts (a failed run never does). ``watch`` is the metric
    each batch line shows: the one the decision turns on."""

    title: str
    about: str
    candidate_file: str
    experiment_file: str
    conversion: dict[str, float]
    watch: str
    expected: str  # the experiment's final status: "rolled_back" | "promoted"


# Why these numbers end as intended. Both experiments use sequential (always-valid) tests, read
# after every batch, with at least 30 runs per arm before any decision. Simulated 1,000 times each
# under the same rules (analysis.decide), both ended as intended every time:
# * rollback: success ~93 % against ~100 % is a 6- to 7-point drop; the one-sided confidence
#   sequence excludes "no worse" after some 150-400 candidate runs, mostly at the 50 % step,
#   after about 800 users (99 % within 1,100). Users who get a video convert alike on both
#   versions, so the primary metric stays inconclusive and the rollback is the guardrail's
#   alone; a failed run bills less, so cost falls and its guardrail holds.
# * promotion: 32 % against 20 % converted is +60 %; the two-sided sequence excludes 0 after
#   some 300-700 runs per arm, so the experiment promotes at its last step, after about 1,000
#   users (99 % within 1,900). Model calls are retried, so neither version fails, and the larger
#   writer's tokens add well under 1 % to a run's cost (8 s of video is $0.40): no guardrail
#   blocks it.
# Smaller effects would be as real but take more users than a demo should.
SCENARIOS: Final = (
    Scenario(
        title="a candidate worse on one guardrail",
        about="v3.2 with retries turned off: about 6 % of its runs fail (v3.2: almost none)",
        candidate_file="v3.2-noretry.yaml",
        experiment_file="noretry.yaml",
        conversion={"baseline": 0.20, "candidate": 0.20},
        watch="success",
        expected="rolled_back",
    ),
    Scenario(
        title="a better candidate",
        about="v3.2 with the larger writer: richer scripts, more users convert, same cost",
        candidate_file="v3.2-writer-large.yaml",
        experiment_file="writer-large.yaml",
        conversion={"baseline": 0.20, "candidate": 0.32},
        watch="converted",
        expected="promoted",
    ),
)


class DemoError(Exception):
    """Something the person running the demo should read, without a traceback."""


@dataclass(frozen=True)
class Ending:
    """How one scenario ended: the experiment's status and the label before and after."""

    scenario: Scenario
    experiment_id: int
    status: str
    users: int
    baseline: str
    candidate: str
    label_before: str | None
    label_after: str | None

    @property
    def as_intended(self) -> bool:
        if self.status != self.scenario.expected:
            return False
        # A promotion moves the label to the candidate; a rollback leaves it on the baseline.
        wanted = self.candidate if self.status == "promoted" else self.baseline
        return self.label_before == self.baseline and self.label_after == wanted


# -- the server ----------------------------------------------------------------------------------


def _wait_started(server: Any, thread: threading.Thread, timeout_s: float = 30.0) -> str:
    """The URL of an in-process uvicorn server once it listens and its store answers."""
    deadline = time.monotonic() + timeout_s
    url = None
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise DemoError("the demo's own server stopped while starting (see the log above)")
        if url is None and server.started:
            url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        if url is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
        time.sleep(0.05)
    raise DemoError(f"the demo's own server was not ready within {timeout_s:.0f} s")


@contextlib.contextmanager
def own_server() -> Iterator[tuple[str, str]]:
    """A server in this process: a free loopback port, a temporary SQLite database, a simulator
    that does not sleep; yields ``(url, admin key)``, and stops it and deletes it on exit."""
    # Imported here: a demo against another server needs none of the server's code.
    import uvicorn

    import engine
    from control_plane.app import create_app
    from control_plane.settings import Settings
    from engine.providers import default_providers

    with tempfile.TemporaryDirectory(prefix="rollgraph-demo-") as tmp:
        settings = Settings(
            env="dev",
            database_url=f"sqlite:///{Path(tmp) / 'demo.db'}",
            admin_key=secrets.token_urlsafe(24),  # nobody else can act on this server
            # The demo evaluates after every batch; a background tick in between would act on
            # a half-reported batch and make the lines harder to follow.
            experiment_eval_s=3600.0,
        )
        app = create_app(
            settings, run_engine=lambda: engine.Engine(providers=default_providers(time_scale=0))
        )
        # Port 0: the kernel picks a free port as uvicorn binds it, so nothing can take it in
        # between. (A socket bound here and handed over would be slower: asyncio sets
        # TCP_NODELAY only on sockets made with IPPROTO_TCP, and delayed ACKs stall the rest.)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
        thread.start()
        try:
            yield _wait_started(server, thread), settings.admin_key
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def _server_at(url: str) -> bool:
    """Whether a rollgraph server answers at ``url``. Nothing listening is ``False``; anything
    else that is not a ready server is a ``DemoError`` (the person meant some server)."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=3)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return False
    except httpx.HTTPError as exc:
        raise DemoError(f"ROLLGRAPH_URL={url} does not work ({type(exc).__name__}: {exc})") from exc
    if response.status_code != 200:
        raise DemoError(
            f"something answers at {url}, but GET /readyz says {response.status_code}: not a "
            "ready rollgraph server; set ROLLGRAPH_URL or pass --own-server"
        )
    return True


class _UserClients:
    """A client per thread of simulated users: threads sharing one httpx client queue on its
    connection pool's lock, which costs a good part of the demo's throughput."""

    def __init__(self, url: str, key: str) -> None:
        self._url, self._key = url, key
        self._local = threading.local()
        self._all: list[Client] = []
        self._lock = threading.Lock()

    def get(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = Client(self._url, self._key)
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._all:
                client.close()
            self._all.clear()


# -- one scenario --------------------------------------------------------------------------------


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DemoError(f"cannot read {path}: {exc}") from exc
    if not isinstance(body, dict):
        raise DemoError(f"{path} must hold a mapping")
    return body


def _apply(client: Client, path: Path) -> str:
    """Apply a version file; the version's name (an identical version's, if there is one)."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoError(f"cannot read {path}: {exc}") from exc
    version: str = client.apply(source)["version"]
    return version


def _label_version(client: Client, workflow: str, label: str) -> str | None:
    return next((x["version"] for x in client.labels(workflow) if x["name"] == label), None)


def _prepare(client: Client, workflow: str, label: str, baseline: str) -> list[str]:
    """Put the label on the baseline with no experiment running on it (one that an interrupted
    demo left behind is stopped); what was done, in words."""
    done = []
    for e in client.experiments(workflow=workflow, status="running"):
        if e["label"] == label:
            client.experiment_stop(e["id"])
            done.append(f"stopped experiment {e['id']}, left running on {workflow}:{label}")
    if _label_version(client, workflow, label) != baseline:
        client.promote(workflow, baseline, label=label)
        done.append(f"label {label} → {baseline}")
    return done


def _visit(client: Client, scenario: Scenario, body: dict[str, Any], user: str, seed: int) -> None:
    """One user: a run through the label, then whether they converted. A "no" is reported too:
    the conversion rate's denominator is every user, not only those who converted."""
    # Seeded by the user, not by which thread gets there first: a user always sends the same
    # prompt and decides the same way on the same version.
    rng = random.Random(f"{seed}:{user}")
    run = client.run(
        body["workflow"], {"prompt": rng.choice(PROMPTS)}, user_id=user, label=body["label"]
    )
    role = "candidate" if run["version"] == body["candidate"] else "baseline"
    converted = run["status"] == "succeeded" and rng.random() < scenario.conversion[role]
    _report(client, run["run_id"], converted)


def _report(client: Client, run_id: str, converted: bool, attempts: int = 3) -> None:
    """Post the outcome, again after a server error: the same value twice is a no-op, so a
    retry is safe (a run is not retried: it would be another run). A busy SQLite store can
    answer 500 ("database is locked") when many users report at once."""
    for attempt in range(1, attempts + 1):
        try:
            client.outcome(run_id, {"converted": converted})
            return
        except ApiError as exc:
            if exc.status < 500 or attempt == attempts:
                raise
        except httpx.TransportError:
            if attempt == attempts:
                raise
        time.sleep(0.2 * attempt)


def _evaluate(client: Client, experiment_id: int) -> dict[str, Any]:
    """Apply the experiment's rules now. On another server, its background evaluator may have
    ended the experiment first: then the decision that ended it."""
    try:
        # The client has no method for it; the demo is its only caller outside curl.
        evaluation: dict[str, Any] = client._call(
            "POST", f"/v1/experiments/{experiment_id}/evaluate"
        )
        return evaluation
    except ApiError as exc:
        if exc.status != 409:  # 409: the experiment is no longer running
            raise
    decisions = client.experiment_decisions(experiment_id)
    ended = next((d for d in decisions if d["applied"] in ("rollback", "promote")), None)
    if ended is None:
        raise DemoError(f"experiment {experiment_id} was ended outside the demo (stopped by hand?)")
    return ended


def _signed(value: float | None, percent: bool) -> str:
    if value is None:
        return "…"
    return f"{value * 100:+.1f}" if percent else f"{value:+.3g}"


def _watched(
    statistics: dict[str, Any], candidate: str, metric: str, *, rate: bool
) -> tuple[str, str, str]:
    """The candidate's effect on ``metric`` against the baseline, its 95 % interval (one-sided
    for a guardrail: the bound its test uses) and p-value, as text; a ``rate`` in points."""
    row: dict[str, Any] = next(
        (m for m in statistics["metrics"] if m["arm"] == candidate and m["metric"] == metric), {}
    )
    if row.get("effect") is None:
        return "-", "-", "-"
    unit = " pts" if rate else ""
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None and high is None:
        interval = "-"
    elif low is None:
        interval = f"≤ {_signed(high, rate)}{unit}"
    elif high is None:
        interval = f"≥ {_signed(low, rate)}{unit}"
    else:
        interval = f"[{_signed(low, rate)}, {_signed(high, rate)}]{unit}"
    p = row.get("p_value")
    p_text = "-" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")
    return f"{_signed(row['effect'], rate)}{unit}", interval, p_text


_ACTION: Final = {"continue": "continue", "halt": "halt", "promote": "better", "rollback": "worse"}
_WHY: Final = {
    "below_min_runs": "too few runs",
    "srm": "sample ratio mismatch",
    "no_data": "no data yet",
    "metric_no_data": "no data yet",
    "no_traffic": "no traffic",
    "guardrail_not_evaluable": "guardrail not testable yet",
}


def _decision(evaluation: dict[str, Any], ramp: list[dict[str, Any]]) -> str:
    """What one evaluation decided and did, in a few words."""
    applied, action = evaluation["applied"], str(evaluation["action"])
    if applied in ("rollback", "promote"):
        return str(applied).upper()
    text = _ACTION.get(action, action)
    if applied == "ramp":
        return f"{text} → ramp to {ramp[evaluation['step'] + 1]['percent']:g} %"
    codes = [r["code"] for r in evaluation["reasons"]]
    why = next((_WHY[c] for c in codes if c in _WHY), None)
    return f"{text} ({why})" if why else text


def _is_rate(body: dict[str, Any], metric: str) -> bool:
    """Whether ``metric`` is a proportion in the experiment ``body``."""
    for m in (body["primary"], *body.get("guardrails", [])):
        if m["name"] == metric:
            return (m.get("kind") or BUILTIN_METRICS.get(metric)) == "proportion"
    return False


def _describe(body: dict[str, Any]) -> list[str]:
    """The experiment's metrics and rules, in two lines."""
    guards = []
    for g in body.get("guardrails", []):
        margin = float(g.get("margin", 0))
        relative = bool(g.get("relative")) and margin > 0
        words = f"{margin * 100:+g} %" if relative else f"{margin:g}"
        guards.append(f"{g['name']} (margin {words})")
    flags = [
        f"auto rollback {'on' if body.get('auto_rollback', True) else 'off'}",
        f"auto promote {'on' if body.get('auto_promote', False) else 'off'}",
    ]
    return [
        f"primary {body['primary']['name']}; guardrails {', '.join(guards)}",
        ", ".join(flags),
    ]


def run_scenario(
    client: Client,
    scenario: Scenario,
    number: int,
    *,
    seed: int = 7,
    workers: int = 8,
    users_client: Callable[[], Client] | None = None,
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
    title = f"── {number}. {scenario.title}: {candidate} "
    say(title + "─" * max(3, 96 - len(title)))
    say(f"   {scenario.about}")
    for line in _prepare(client, workflow, label, baseline):
        say(f"   {line}")
    label_before = _label_version(client, workflow, label)
    rates = scenario.conversion
    say(
        f"   users convert {rates['baseline'] * 100:g} % on {baseline}, "
        f"{rates['candidate'] * 100:g} % on {candidate} (never when the run fails)"
    )
    experiment = client.experiment_start(body)
    eid = int(experiment["id"])
    ramp: list[dict[str, Any]] = body["ramp"]
    steps = " → ".join(f"{s['percent']:g}" for s in ramp)
    say(f"   experiment {eid} on {workflow}:{label}: {baseline} vs {candidate}, ramp {steps} %")
    for line in _describe(body):
        say(f"   {line}")
    say()
    metric = scenario.watch
    rate = _is_rate(body, metric)  # rates read best in points
    wb, wc = max(6, len(baseline)), max(6, len(candidate))
    say(
        f"   {'batch':>5} {'users':>6} {'share':>5}  {baseline:>{wb}} {candidate:>{wc}}  "
        f"{metric + ' Δ':>12}  {'95 % interval':<19} {'p':>7}  decision"
    )
    users = 0
    evaluation: dict[str, Any] = {}
    ended = False
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-user")
    try:
        while users < MAX_USERS:
            batch = [f"u{number}-{i:05d}" for i in range(users, users + BATCH)]
            # list() re-raises the first error of a visit (the server went away, a 401...).
            list(pool.map(lambda u: _visit(users_client(), scenario, body, u, seed), batch))
            users += BATCH
            evaluation = _evaluate(client, eid)
            stats = evaluation["statistics"]
            n = {m["arm"]: m["n"] for m in stats["metrics"] if m["metric"] == "success"}
            effect, interval, p = _watched(stats, candidate, metric, rate=rate)
            share = ramp[min(evaluation["step"], len(ramp) - 1)]["percent"]
            say(
                f"   {users // BATCH:>5} {users:>6,} {share:>3g} %  {n.get(baseline, 0):>{wb}} "
                f"{n.get(candidate, 0):>{wc}}  {effect:>12}  {interval:<19} {p:>7}  "
                f"{_decision(evaluation, ramp)}"
            )
            if evaluation["applied"] in ("rollback", "promote"):
                ended = True
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if not ended:  # failed, interrupted or undecided: free the label for the next demo
            with contextlib.suppress(ApiError, httpx.HTTPError):
                client.experiment_stop(eid)
    results = client.experiment_results(eid)
    status = results["experiment"]["status"]
    label_after = _label_version(client, workflow, label)
    say()
    if status == "rolled_back":
        say(
            f"   ⇒ ROLLED BACK after {users:,} users: {candidate} gets no more traffic, "
            f"label {label} stays on {label_after}"
        )
    elif status == "promoted":
        say(f"   ⇒ PROMOTED after {users:,} users: label {label} {label_before} → {label_after}")
    else:
        say(f"   ⇒ no decision after {users:,} users: experiment {eid} is {status}")
    if evaluation:
        # The numbers the ending rests on. (Read again after a rollback, the results would see
        # the candidate's runs against its new 0 % share and call that a sample ratio mismatch.)
        final = {
            **evaluation["statistics"],
            "experiment": results["experiment"],
            "action": evaluation["action"],
            "reasons": evaluation["reasons"],
        }
        say()
        say("\n".join(f"   {line}" for line in render_results(final).splitlines()))
    say()
    return Ending(scenario, eid, status, users, baseline, candidate, label_before, label_after)


# -- main ----------------------------------------------------------------------------------------


def _message(exc: BaseException, url: str) -> str:
    if isinstance(exc, ApiError):
        hint = ""
        if exc.status in (401, 403):
            hint = "; set ROLLGRAPH_API_KEY to an admin key of that server, or pass --own-server"
        return f"the server at {url} said: {exc.message} [{exc.code}]{hint}"
    if isinstance(exc, httpx.HTTPError):
        return f"lost the server at {url} ({type(exc).__name__}: {exc})"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demos.experiments",
        description="Two experiments on simulated users: one rolled back, one promoted.",
    )
    parser.add_argument("--seed", type=int, default=7, help="the simulated users' draws")
    parser.add_argument(
        "--own-server", action="store_true", help="start a server even when one answers"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="users in flight at once (default: 8 on its own server; 32 on another, whose "
        "simulator may take its time)",
    )
    args = parser.parse_args(argv)
    url = os.environ.get("ROLLGRAPH_URL", DEFAULT_URL).rstrip("/")
    started = time.monotonic()
    endings: list[Ending] = []
    try:
        external = not args.own_server and _server_at(url)
        with contextlib.ExitStack() as stack:
            if external:
                key = os.environ.get("ROLLGRAPH_API_KEY") or DEV_ADMIN_KEY
                where = [f"the server at {url} (ROLLGRAPH_URL)"]
                workers = args.workers or 32
            else:
                why = "--own-server" if args.own_server else f"nothing answers at {url}"
                url, key = stack.enter_context(own_server())
                where = [
                    f"its own, in this process, at {url} ({why})",
                    "temporary SQLite database, zero-latency simulator; stopped at the end",
                ]
                workers = args.workers or 8
            print("rollgraph experiment demo: two experiments on simulated users of product-video")
            print(f"   server  {where[0]}")
            for line in where[1:]:
                print(f"           {line}")
            print(
                f"   each batch: {BATCH} new users run the workflow and report whether they "
                f"converted (seed {args.seed}),\n   then POST /v1/experiments/ID/evaluate "
                "applies the experiment's rules\n",
                flush=True,
            )
            client = stack.enter_context(Client(url, key))
            users = _UserClients(url, key)
            stack.callback(users.close)
            for number, scenario in enumerate(SCENARIOS, 1):
                endings.append(
                    run_scenario(
                        client, scenario, number, seed=args.seed, workers=workers,
                        users_client=users.get,
                    )
                )  # fmt: skip
    except KeyboardInterrupt:
        print("rollgraph demo: interrupted", file=sys.stderr)
        return 130
    except (DemoError, ApiError, httpx.HTTPError, OSError) as exc:
        print(f"rollgraph demo: {_message(exc, url)}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    if external:
        ids = ", ".join(str(e.experiment_id) for e in endings)
        print(f"look again: rollgraph experiment status|decisions ID (experiments {ids})")
    failed = [e for e in endings if not e.as_intended]
    for e in failed:
        print(
            f"rollgraph demo: scenario {e.scenario.title!r} ended {e.status} after {e.users:,} "
            f"users, with label {e.label_before} → {e.label_after}; expected "
            f"{e.scenario.expected}",
            file=sys.stderr,
        )
    if failed:
        return 1
    summary = "; ".join(f"{e.candidate} {e.status.replace('_', ' ')}" for e in endings)
    print(f"done in {elapsed:.1f} s: {summary}, as intended.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
