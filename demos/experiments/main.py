"""``python -m demos.experiments``: the command line. It picks the server (the one at
``ROLLGRAPH_URL`` or its own), says what the demo will do, runs the scenarios in turn and turns
their endings into the exit status: 0 when both end as intended, 1 otherwise or when the server
fails the demo (a message, never a traceback), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Final

import httpx

from control_plane.client import ApiError, SyncClient
from control_plane.settings import DEV_ADMIN_KEY
from demos.experiments.drive import run_scenario
from demos.experiments.scenarios import SCENARIOS, DemoError, Ending
from demos.experiments.servers import failure_message, own_server, server_at
from demos.experiments.users import BATCH, UserClients

__all__ = ["DEFAULT_URL", "main"]

DEFAULT_URL: Final = "http://127.0.0.1:8000"


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
        external = not args.own_server and server_at(url)
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
            client = stack.enter_context(SyncClient(url, key))
            users = UserClients(url, key)
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
        print(f"rollgraph demo: {failure_message(exc, url)}", file=sys.stderr)
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
