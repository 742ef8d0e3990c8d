"""``rollgraph run|resume|trace|outcome`` and ``rollgraph runs list|follow``: runs on a server.

``run --wait`` and ``runs follow`` print each change of the run (its status, then each node's
transitions as the running attempt reports them) until it succeeded or failed; the exit code
is the run's: 0 succeeded, 1 failed. The run is read when its event stream says it changed
(``GET /v1/runs/{id}/events``), or every ``--interval`` from a server without the stream.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Literal

from control_plane.cli.remote import add_json, emit, remote_command, remote_options, when
from control_plane.cli.waterfall import render_waterfall
from control_plane.client import SyncClient, models
from control_plane.runs.schemas import RunMode, RunStatus

__all__ = ["add_run_commands"]

_STATUSES: tuple[RunStatus, ...] = ("queued", "running", "succeeded", "failed", "budget_exceeded")
_MODES: tuple[RunMode, ...] = ("sync", "async")


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    # The server knows the input types, the CLI does not: `--input` sends text as it is,
    # `--input-json` sends a JSON value (numbers, booleans, objects).
    values: dict[str, Any] = {}
    for pair, as_json in [(p, False) for p in args.input] + [(p, True) for p in args.input_json]:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{pair!r}: write name=value")
        try:
            values[name] = json.loads(text) if as_json else text
        except json.JSONDecodeError as exc:
            raise ValueError(f"--input-json {name}: not JSON ({exc.msg})") from None
        except RecursionError:  # the server would refuse it too (64 levels at most)
            raise ValueError(f"--input-json {name}: nested too deeply") from None
    return values


def _run_text(r: models.RunPublic) -> str:
    head = f"run {r.run_id}  {r.workflow} {r.version}  {r.status}  ({r.reason})"
    if r.status not in models.TERMINAL:
        return f"{head}; follow it with `rollgraph runs follow {r.run_id}`"
    lines = [f"{head}  {float(r.latency_s or 0):.3f}s  ${r.cost_usd:.4f}"]
    if r.error:
        lines.append(f"  error: {r.error}")
        if r.status in ("failed", "budget_exceeded"):
            lines.append(f"  resume it with `rollgraph resume {r.run_id}`")
    lines += [f"  {k}: {json.dumps(v)[:200]}" for k, v in (r.outputs or {}).items()]
    return "\n".join(lines)


def _exit(r: models.RunPublic) -> int:
    return 1 if r.status in ("failed", "budget_exceeded") else 0


def _step_text(step: models.StepState) -> str:
    line = f"  {step.node}: {step.state}"
    if step.attempts > 1:
        line += f" (attempt {step.attempts})"
    if step.cost_usd:
        line += f"  ${step.cost_usd:.4f}"
    if step.state == "failed" and step.error:
        line += f"  {step.error}"
    return line


def _follow(client: SyncClient, args: argparse.Namespace, run_id: str) -> int:
    """Print each change of the run (its status, then each node's transitions) until it ends;
    its exit code. ``--json``: one object per event (``run``, ``step``, then ``end``)."""
    seen: dict[tuple[int | None, str], tuple[str, int]] = {}  # (attempt, node) → state
    last: models.RunDetail | None = None
    try:
        for run in client.follow(run_id, interval_s=args.interval):
            if last is None or (last.status, last.attempt) != (run.status, run.attempt):
                if args.json:
                    change = {"event": "run", "run_id": run.run_id, "status": run.status}
                    print(json.dumps(change | {"attempt": run.attempt}), flush=True)
                else:
                    print(f"run {run.run_id}  attempt {run.attempt}  {run.status}", flush=True)
            for step in run.steps:
                key, state = (run.trace_attempt, step.node), (step.state, step.attempts)
                if seen.get(key) == state:
                    continue
                seen[key] = state
                if args.json:
                    event: dict[str, object] = {"event": "step", "run_id": run.run_id}
                    event["attempt"] = run.trace_attempt
                    print(json.dumps(event | step.model_dump(mode="json")), flush=True)
                else:
                    print(_step_text(step), flush=True)
            last = run
    except KeyboardInterrupt:
        status = last.status if last is not None else "unknown"
        print(
            f"rollgraph: stopped following; the run is {status}: `rollgraph runs follow {run_id}`",
            file=sys.stderr,
        )
        return 130
    assert last is not None
    public = models.RunPublic.model_validate(
        last.model_dump(exclude={"trace", "trace_attempt", "steps"})
    )
    if args.json:
        print(json.dumps({"event": "end", "run": public.model_dump(mode="json")}))
    else:
        print(_run_text(public))
    return _exit(public)


def _run(client: SyncClient, args: argparse.Namespace) -> int:
    try:
        inputs = _inputs(args)
    except ValueError as exc:
        print(f"rollgraph: {exc}", file=sys.stderr)
        return 2
    mode: Literal["sync", "async"] = "async" if args.asynchronous or args.wait else "sync"
    r = client.run(
        args.workflow,
        inputs,
        user_id=args.user,
        version=args.version,
        label=args.label,
        mode=mode,
        idempotency_key=args.idempotency_key,
    )
    if args.wait:
        return _follow(client, args, r.run_id)
    emit(args, r, lambda: _run_text(r))
    return _exit(r)


def _resume(client: SyncClient, args: argparse.Namespace) -> int:
    mode: Literal["sync", "async"] = "async" if args.asynchronous or args.wait else "sync"
    r = client.resume(args.run_id, mode=mode, idempotency_key=args.idempotency_key)
    if args.wait:
        return _follow(client, args, r.run_id)
    emit(args, r, lambda: _run_text(r))
    return _exit(r)


def _trace(client: SyncClient, args: argparse.Namespace) -> int:
    run = client.get_run(args.run_id)
    if args.json:
        print(json.dumps(run.trace, indent=2))
    elif not run.trace:
        print(f"run {args.run_id} is {run.status}: no trace yet")
    else:
        print(render_waterfall(run.trace))
        print(f"  routed: {run.reason}" + (f" (user {run.user_id})" if run.user_id else ""))
    return 0


def _runs_list(client: SyncClient, args: argparse.Namespace) -> int:
    filters = ("workflow", "version", "status", "mode", "since", "until", "limit")
    listed = client.runs(**{k: getattr(args, k) for k in filters})

    def render() -> str:
        return "\n".join(
            f"{r.run_id}  {when(r.created_at)}  {r.workflow} {r.version:<8} {r.mode:<5} "
            f"{r.status:<9} ${r.cost_usd:.4f}  {r.reason}"
            for r in listed
        )

    emit(args, listed, render)
    return 0


def _runs_follow(client: SyncClient, args: argparse.Namespace) -> int:
    return _follow(client, args, args.run_id)


def _metric(text: str) -> tuple[str, bool | float]:
    """``METRIC=VALUE``: true/false a proportion's outcome, a number a mean's."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: write METRIC=VALUE")
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    number: float
    try:
        number = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{name}: expected true, false or a number, got {value!r}")
    return name, number


def _outcome(client: SyncClient, args: argparse.Namespace) -> int:
    recorded = client.outcome(args.run_id, dict(args.metrics))
    lines = [f"{name}: {state}" for name, state in recorded.metrics.items()]
    emit(args, recorded, lambda: f"run {recorded.run_id}\n  " + "\n  ".join(lines))
    return 0


def _follow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="without the server's event stream, poll every (default 0.5)",
    )


def _key_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="at most once per key: a retry gets the first answer (default: a new key, "
        "used for the client's own retries)",
    )


def add_run_commands(sub: Any) -> None:
    def command(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        remote_options(p)
        add_json(p)
        return p

    p = command(sub, "run", "run a workflow on the server (version by pin, label or rollout)")
    p.add_argument("workflow", metavar="NAME", help="the workflow's name")
    p.add_argument("--input", action="append", default=[], metavar="NAME=TEXT", help="a text input")
    p.add_argument(
        "--input-json", action="append", default=[], metavar="NAME=JSON", help="a JSON input"
    )
    p.add_argument("--user", help="user id: sticky rollout assignment (default: random)")
    p.add_argument("--version", help="pin a version")
    p.add_argument("--label", help="route by this label, with its rollout (default: prod)")
    p.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="return at once with the run id; follow it with `runs follow`",
    )
    p.add_argument("--wait", action="store_true", help="run async and follow it until it ends")
    _key_option(p)
    _follow_options(p)
    p.set_defaults(func=remote_command(_run))
    p = command(sub, "resume", "resume a failed run from its completed steps")
    p.add_argument("run_id", metavar="RUN_ID", help="the failed run")
    p.add_argument("--async", dest="asynchronous", action="store_true", help="return at once")
    p.add_argument("--wait", action="store_true", help="resume async and follow it until it ends")
    _key_option(p)
    _follow_options(p)
    p.set_defaults(func=remote_command(_resume))
    p = command(sub, "trace", "show a stored run's trace as a waterfall")
    p.add_argument("run_id", metavar="RUN_ID", help="the run")
    p.set_defaults(func=remote_command(_trace))
    p = command(sub, "outcome", "record what happened after a run (once per metric)")
    p.add_argument("run_id", metavar="RUN_ID", help="the run")
    p.add_argument(
        "metrics",
        nargs="+",
        type=_metric,
        metavar="METRIC=VALUE",
        help="true/false (a proportion: converted=true) or a number (rating=4.5)",
    )
    p.set_defaults(func=remote_command(_outcome))
    runs = sub.add_parser("runs", help="list runs, follow one")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    p = command(runs_sub, "list", "runs matching every filter, newest first")
    p.add_argument("--workflow", help="the workflow's name")
    p.add_argument("--version", help="a version")
    p.add_argument("--status", choices=_STATUSES, help=" | ".join(_STATUSES))
    p.add_argument("--mode", choices=_MODES, help="sync | async")
    p.add_argument("--since", metavar="TIME", help="created at or after (ISO 8601)")
    p.add_argument("--until", metavar="TIME", help="created before (ISO 8601)")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.set_defaults(func=remote_command(_runs_list))
    p = command(runs_sub, "follow", "print a run's progress until it ends; exit 1 if it failed")
    p.add_argument("run_id", metavar="RUN_ID", help="the run")
    _follow_options(p)
    p.set_defaults(func=remote_command(_runs_follow))
