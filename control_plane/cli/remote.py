"""What every ``rollgraph`` command that talks to a server shares: ``--url``/``--api-key``,
``--json``, and one place that turns the client's errors into messages and exit codes.

Exit codes: 0 done; 1 the server refused (or the run failed); 2 a usage error or no server
reached (nothing was sent); 3 the request was sent and no answer came: it may have been done.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from control_plane.client import ApiError, NoAnswer, SyncClient

__all__ = [
    "DEFAULT_URL",
    "EXIT_NO_ANSWER",
    "add_json",
    "emit",
    "plain",
    "remote_command",
    "remote_options",
    "when",
]

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_NO_ANSWER = 3


def plain(value: Any) -> Any:
    """Models (and lists of them) as the JSON the API sent."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def when(at: datetime | None) -> str:
    """A time as the CLI shows it: UTC to the second."""
    return "-" if at is None else at.strftime("%Y-%m-%dT%H:%M:%S")


def emit(args: argparse.Namespace, value: Any, render: Callable[[], str | None]) -> None:
    """``value`` as JSON with ``--json``, else what ``render`` says (nothing when ``None``)."""
    if getattr(args, "json", False):
        print(json.dumps(plain(value), indent=2, ensure_ascii=False))
        return
    text = render()
    if text:
        print(text)


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")


def remote_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("ROLLGRAPH_URL", DEFAULT_URL),
        help=f"the server (default: ROLLGRAPH_URL or {DEFAULT_URL})",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("ROLLGRAPH_API_KEY"),
        help="an API key (default: ROLLGRAPH_API_KEY)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="the longest wait for an answer (default 30); a sync run or resume waits at least "
        "the server's run deadline plus its store margin (ROLLGRAPH_RUN_DEADLINE_S, "
        "ROLLGRAPH_RUN_STORE_MARGIN_S: 60 + 30 s unless set here)",
    )


def _api_error(exc: ApiError) -> None:
    print(f"rollgraph: {exc.message} [{exc.code}]", file=sys.stderr)
    if exc.status == 401:
        print("  pass --api-key KEY or set ROLLGRAPH_API_KEY", file=sys.stderr)
    for p in exc.details.get("problems", []):
        where = f"line {p['line']}: " if p.get("line") else ""
        print(f"  {where}{p['location']}: {p['message']} [{p['code']}]", file=sys.stderr)
    # A schema error: each field by its path in the request, and what was expected there.
    for f in exc.fields:
        print(f"  {f.path}: {f.expected}", file=sys.stderr)


def _no_answer(exc: NoAnswer, args: argparse.Namespace) -> None:
    how = f"within {exc.timeout_s:g} s" if exc.timed_out else "(the connection was lost)"
    call = exc.call
    print(
        f"rollgraph: no answer from {exc.url} {how} after the request was sent "
        f"({call.method} {call.path})",
        file=sys.stderr,
    )
    if not call.runs:
        print("  it may have been carried out: check before sending it again", file=sys.stderr)
        return
    print(
        "  the run may have completed (and been billed); do not simply run it again:",
        file=sys.stderr,
    )
    if call.path.endswith("/resume"):
        run_id = call.path.split("/")[3]
        print(
            f"  retry with the same key, which answers the resume instead of running it again:\n"
            f"    rollgraph resume {run_id} --idempotency-key {exc.idempotency_key}\n"
            f"  or follow it: rollgraph runs follow {run_id}",
            file=sys.stderr,
        )
        return
    workflow = (call.json or {}).get("workflow", "NAME")
    print(
        f"  retry with the same key, which answers the run instead of running it again:\n"
        f"    rollgraph run {workflow} ... --idempotency-key {exc.idempotency_key}\n"
        f"  or look it up: rollgraph runs list --workflow {workflow}",
        file=sys.stderr,
    )


def _client(args: argparse.Namespace) -> SyncClient:
    return SyncClient(args.url, args.api_key, timeout_s=args.timeout)


def remote_command(
    command: Callable[[SyncClient, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Run a command against the server, turning its errors into messages and exit codes."""

    def run(args: argparse.Namespace) -> int:
        try:
            with _client(args) as client:
                return command(client, args)
        except ApiError as exc:
            _api_error(exc)
            return 1
        except NoAnswer as exc:
            _no_answer(exc, args)
            return EXIT_NO_ANSWER
        except httpx.HTTPError as exc:
            print(
                f"rollgraph: cannot reach {args.url} ({type(exc).__name__}); "
                "start a server with `rollgraph serve` or pass --url",
                file=sys.stderr,
            )
            return 2

    return run
