"""``rollgraph`` commands that talk to a server: serve, apply, versions, diff, promote, rollback,
run, trace, rollout set/status. ``remote_command`` and ``remote_options`` are shared with the
access commands (``cli_access``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx

from control_plane.cli.waterfall import render_waterfall
from control_plane.client import ApiError, Client

__all__ = ["add_remote_commands", "remote_command", "remote_options"]

DEFAULT_URL = "http://127.0.0.1:8000"


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.api_key)


def remote_command(command: Callable[[Client, argparse.Namespace], int]) -> Callable[..., int]:
    """Run a command against the server, turning its errors into messages and exit codes."""

    def run(args: argparse.Namespace) -> int:
        try:
            with _client(args) as client:
                return command(client, args)
        except ApiError as exc:
            print(f"rollgraph: {exc.message} [{exc.code}]", file=sys.stderr)
            if exc.status == 401:
                print("  pass --api-key KEY or set ROLLGRAPH_API_KEY", file=sys.stderr)
            for p in exc.details.get("problems", []):
                where = f"line {p['line']}: " if p.get("line") else ""
                print(f"  {where}{p['location']}: {p['message']} [{p['code']}]", file=sys.stderr)
            return 1
        except httpx.HTTPError as exc:
            print(
                f"rollgraph: cannot reach {args.url} ({type(exc).__name__}); "
                "start a server with `rollgraph serve` or pass --url",
                file=sys.stderr,
            )
            return 2

    return run


def _apply(client: Client, args: argparse.Namespace) -> int:
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"rollgraph: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    result = client.apply(source, version=args.version)
    verb = "created" if result["created"] else "unchanged"
    print(f"{result['workflow']} {result['version']} {verb}: {result['message']}")
    return 0


def _versions(client: Client, args: argparse.Namespace) -> int:
    labels: dict[str, list[str]] = {}
    for label in client.labels(args.workflow):
        labels.setdefault(label["version"], []).append(label["name"])
    for v in client.versions(args.workflow):
        tags = ", ".join(sorted(labels.get(v["version"], [])))
        print(
            f"{v['version']:<10} {v['status']:<9} {v['digest'][:19]}  {v['created_at'][:19]}"
            + (f"  [{tags}]" if tags else "")
        )
    return 0


def _diff(client: Client, args: argparse.Namespace) -> int:
    d: dict[str, Any] = client.diff(args.workflow, args.a, args.b)
    for key in ("nodes_added", "nodes_removed"):
        if d.get(key):
            print(f"{key.replace('_', ' ')}: {', '.join(d[key])}")
    print(d.get("text") or "(no differences)")
    return 0


def _promote(client: Client, args: argparse.Namespace) -> int:
    label = client.promote(args.workflow, args.version, label=args.label)
    print(f"{args.workflow} {label['name']} → {label['version']}")
    return 0


def _rollback(client: Client, args: argparse.Namespace) -> int:
    label = client.rollback(args.workflow, label=args.label)
    print(f"{args.workflow} {label['name']} rolled back → {label['version']}")
    return 0


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


def _run(client: Client, args: argparse.Namespace) -> int:
    try:
        inputs = _inputs(args)
    except ValueError as exc:
        print(f"rollgraph: {exc}", file=sys.stderr)
        return 2
    mode: Literal["sync", "async"] = "async" if args.asynchronous else "sync"
    result = client.run(
        args.workflow,
        inputs,
        user_id=args.user,
        version=args.version,
        label=args.label,
        mode=mode,
    )
    return _print_run(result, as_json=args.json)


def _print_run(result: dict[str, Any], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
    elif result["status"] in ("queued", "running"):
        print(
            f"run {result['run_id']}  {result['workflow']} {result['version']}  "
            f"{result['status']}  ({result['reason']}); see it with `rollgraph trace "
            f"{result['run_id']}`"
        )
    else:
        print(
            f"run {result['run_id']}  {result['workflow']} {result['version']}  "
            f"{result['status']}  ({result['reason']})  {float(result['latency_s'] or 0):.3f}s  "
            f"${float(result['cost_usd']):.4f}"
        )
        if result.get("error"):
            print(f"  error: {result['error']}")
            if result["status"] == "failed":
                print(f"  resume it with `rollgraph resume {result['run_id']}`")
        for name, value in (result.get("outputs") or {}).items():
            print(f"  {name}: {json.dumps(value)[:200]}")
    return 0 if result["status"] in ("succeeded", "queued", "running") else 1


def _resume(client: Client, args: argparse.Namespace) -> int:
    mode: Literal["sync", "async"] = "async" if args.asynchronous else "sync"
    return _print_run(client.resume(args.run_id, mode=mode), as_json=args.json)


def _trace(client: Client, args: argparse.Namespace) -> int:
    run = client.get_run(args.run_id)
    if not run["trace"]:
        print(f"run {args.run_id} is {run['status']}: no trace yet")
        return 0
    if args.json:
        print(json.dumps(run["trace"], indent=2))
    else:
        print(render_waterfall(run["trace"]))
        print(
            f"  routed: {run['reason']}" + (f" (user {run['user_id']})" if run["user_id"] else "")
        )
    return 0


def _rollout_line(r: dict[str, Any]) -> str:
    parts = [f"{r['workflow']} {r['label']}: baseline {r['baseline']}"]
    for c in r["candidates"]:
        note = "" if c["active"] else " (not serving)"
        parts.append(f"{c['version']} {c['percent']:g}%{note}")
    if not r["candidates"]:
        parts.append("no rollout")
    return ", ".join(parts)


class _CandidatePairs(argparse.Action):
    """``VERSION PERCENT [VERSION PERCENT ...]`` as a list of (version, percent) pairs; an odd
    count or a percent that is not a number is a usage error (exit 2)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        words = [str(v) for v in values or ()]
        if len(words) % 2:
            parser.error(
                f"give VERSION PERCENT pairs, got {len(words)} value(s): "
                f"{' '.join(words)!r} (is a percent missing?)"
            )
        pairs: list[tuple[str, float]] = []
        for version, text in zip(words[::2], words[1::2], strict=True):
            try:
                percent = float(text)
            except ValueError:
                percent = math.nan
            if not math.isfinite(percent):
                parser.error(f"percent of {version} must be a number, got {text!r}")
            pairs.append((version, percent))
        setattr(namespace, self.dest, pairs)


def _rollout_set(client: Client, args: argparse.Namespace) -> int:
    pairs: list[tuple[str, float]] = args.candidates
    try:
        if len(pairs) == 1:
            (version, percent), *_ = pairs
            rollout = client.rollout_set(args.workflow, version, percent, label=args.label)
        else:
            rollout = client.rollout_set_many(args.workflow, pairs, label=args.label)
    except ApiError as exc:
        if exc.code != "invalid_request":
            raise
        # A 422 names what to fix per field (a sum above 100, a repeated version): show it.
        print(f"rollgraph: {exc.message} [{exc.code}]", file=sys.stderr)
        for field in exc.details.get("fields", []):
            message = str(field.get("message", "")).removeprefix("Value error, ")
            print(f"  {field.get('location', '')}: {message}", file=sys.stderr)
        return 1
    print(_rollout_line(rollout))
    return 0


def _rollout_status(client: Client, args: argparse.Namespace) -> int:
    print(_rollout_line(client.rollout_status(args.workflow, label=args.label)))
    return 0


def remote_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("ROLLGRAPH_URL", DEFAULT_URL))
    p.add_argument("--api-key", default=os.environ.get("ROLLGRAPH_API_KEY"))


def add_remote_commands(sub: Any) -> None:
    def remote_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        remote_options(p)
        return p

    p = remote_parser("apply", "store a definition as a new immutable version")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--version", help="version label (default: the file's `version:` or next)")
    p.set_defaults(func=remote_command(_apply))
    p = remote_parser("versions", "list a workflow's versions and their labels")
    p.add_argument("workflow", metavar="NAME")
    p.set_defaults(func=remote_command(_versions))
    p = remote_parser("diff", "diff two versions of a workflow")
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.set_defaults(func=remote_command(_diff))
    p = remote_parser("promote", "point a label at a version")
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--label", default="prod")
    p.set_defaults(func=remote_command(_promote))
    p = remote_parser("rollback", "move a label back to where it pointed before")
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("--label", default="prod")
    p.set_defaults(func=remote_command(_rollback))
    p = remote_parser("run", "run a workflow on the server (version by pin, label or rollout)")
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("--input", action="append", default=[], metavar="NAME=TEXT")
    p.add_argument("--input-json", action="append", default=[], metavar="NAME=JSON")
    p.add_argument("--user", help="user id: sticky rollout assignment (default: random)")
    p.add_argument("--version", help="pin a version")
    p.add_argument("--label", help="route by this label, with its rollout (default: prod)")
    p.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="return at once with the run id; read it later with `trace`",
    )
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.set_defaults(func=remote_command(_run))
    p = remote_parser("resume", "resume a failed run from its completed steps")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--async", dest="asynchronous", action="store_true", help="return at once")
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.set_defaults(func=remote_command(_resume))
    p = remote_parser("trace", "show a stored run's trace as a waterfall")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="print the trace as JSON")
    p.set_defaults(func=remote_command(_trace))
    rollout = sub.add_parser("rollout", help="send shares of a label's traffic to candidates")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    p = rollout_sub.add_parser(
        "set",
        help="set the candidates and their percentages (replaces them; 0 ends the rollout)",
        description="Replace the label's candidates: `v3.3 10` sends 10 % of its traffic to "
        "v3.3, `v3.3 10 v3.4 5` splits 15 % between two candidates (percents sum to at most "
        "100); `v3.3 0` ends the rollout.",
    )
    remote_options(p)
    p.add_argument("workflow", metavar="NAME")
    p.add_argument(
        "candidates",
        nargs="+",
        action=_CandidatePairs,
        metavar="VERSION PERCENT",
        help="a candidate version and its percent of the label's traffic, repeated",
    )
    p.add_argument("--label", default="prod")
    p.set_defaults(func=remote_command(_rollout_set))
    p = rollout_sub.add_parser("status", help="show a label's baseline and candidates")
    remote_options(p)
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("--label", default="prod")
    p.set_defaults(func=remote_command(_rollout_status))
