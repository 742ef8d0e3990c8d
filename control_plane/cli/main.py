"""The ``rollgraph`` command line: ``validate`` and ``exec`` on the embedded engine, the commands
that start a process (``serve``, ``worker``), and those that talk to a server (``apply``,
``versions``, ``run``, ``runs``, ``outcome``, ``rollout``, ``experiment``, ``keys``, ...)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import engine
from control_plane.cli.access import add_access_commands
from control_plane.cli.experiments import add_experiment_commands
from control_plane.cli.processes import add_process_commands
from control_plane.cli.runs import add_run_commands
from control_plane.cli.shadow import add_shadow_commands
from control_plane.cli.waterfall import render_waterfall
from control_plane.cli.workflows import add_workflow_commands
from control_plane.settings import provider_limits
from engine.errors import DefinitionError, Problem, ValidationError
from engine.http_policy import parse_entry, parse_network
from engine.providers import OpenAIProvider, Provider, SimProvider
from engine.workflow import InputBindingError, Workflow, parse_input_text

__all__ = ["main"]


def _print_problems(path: str, problems: Sequence[Problem]) -> None:
    for p in problems:
        where = f"{path}:{p.line}" if p.line else path
        print(f"{where}: {p.severity}: {p.location}: {p.message} [{p.code}]", file=sys.stderr)


def _load(path: str) -> tuple[Workflow | None, int]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"rollgraph: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return None, 2
    except UnicodeDecodeError as exc:
        print(f"rollgraph: {path} is not UTF-8 text ({exc.reason})", file=sys.stderr)
        return None, 2
    try:
        workflow = engine.define(text)
    except (DefinitionError, ValidationError) as exc:
        _print_problems(path, exc.problems)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        print(f"{path}: invalid, {errors} error(s)", file=sys.stderr)
        return None, 1
    _print_problems(path, workflow.warnings)
    return workflow, 0


def _validation(path: str) -> tuple[dict[str, Any], int]:
    """One file's verdict as ``validate --json`` prints it, and its exit code."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {"file": path, "valid": False, "error": f"cannot read: {exc}"}, 2
    try:
        workflow = engine.define(text)
    except (DefinitionError, ValidationError) as exc:
        return {"file": path, "valid": False, "problems": [p.to_json() for p in exc.problems]}, 1
    return {
        "file": path,
        "valid": True,
        "workflow": workflow.name,
        "version": workflow.version,
        "nodes": len(workflow.nodes),
        "digest": workflow.digest,
        "problems": [p.to_json() for p in workflow.warnings],
    }, 0


def cmd_validate(args: argparse.Namespace) -> int:
    if args.json:
        verdicts = [_validation(path) for path in args.files]
        print(json.dumps([v for v, _ in verdicts], indent=2))
        return max(code for _, code in verdicts)
    status = 0
    for path in args.files:
        workflow, code = _load(path)
        status = max(status, code)
        if workflow is not None:
            print(
                f"{path}: valid: {workflow.name} {workflow.version or ''} "
                f"({len(workflow.nodes)} nodes, {workflow.digest[:19]})"
            )
    return status


def _parse_inputs(workflow: Workflow, pairs: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--input {pair!r}: write name=value")
        declared = workflow.input_types.get(name)
        try:
            values[name] = text if declared is None else parse_input_text(text, declared[0])
        except ValueError as exc:
            raise ValueError(f"--input {name}: {exc}") from None
    return values


def _checked(parse: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type: the text itself, once ``parse`` accepts it (else a usage error)."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


_EXEC_HTTP_ADVICE = engine.HttpAdvice(
    hosts="`rollgraph exec --allow-host HOST:PORT`",
    networks="`rollgraph exec --allow-network CIDR`",
)


def _concurrency_entry(text: str) -> str:
    try:
        provider_limits(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _resume_command(args: argparse.Namespace, run_id: str) -> str:
    words = ["rollgraph", "exec", args.file]
    for pair in args.input:
        words += ["--input", pair]
    if args.seed is not None:
        words += ["--seed", str(args.seed)]
    for host in args.allow_host:
        words += ["--allow-host", host]
    for network in args.allow_network:
        words += ["--allow-network", network]
    for entry in args.concurrency:
        words += ["--concurrency", entry]
    words += ["--cache", args.cache, "--resume", run_id]
    return shlex.join(words)


_ATTEMPTS_KEY = "run:{}:#attempts"


async def _attempts(cache: engine.StepCache, run_id: str) -> int | None:
    """How many times ``run_id`` executed with this cache; ``None`` for a run it never saw."""
    marker = await cache.get(_ATTEMPTS_KEY.format(run_id))
    return None if marker is None else marker.attempts


async def _exec(args: argparse.Namespace, workflow: Workflow, inputs: dict[str, Any]) -> int:
    cache = engine.SQLiteStepCache(args.cache) if args.cache else None
    providers: list[Provider] = [
        SimProvider(seed=args.seed or 0, time_scale=args.time_scale),
        OpenAIProvider(),
    ]
    try:
        eng = engine.Engine(
            providers=providers,
            cache=cache,
            http_allow_hosts=args.allow_host,
            http_allow_networks=args.allow_network,
            http_advice=_EXEC_HTTP_ADVICE,
            concurrency=provider_limits(",".join(args.concurrency)),
        )
    except ValueError as exc:  # a provider that does not exist
        print(f"rollgraph: --concurrency: {exc}", file=sys.stderr)
        return 2
    async with eng:
        if args.resume:
            assert cache is not None  # cmd_exec refuses --resume without --cache
            attempt = await _attempts(cache, args.resume)
            if attempt is None:
                print(
                    f"rollgraph: no run {args.resume!r} in {args.cache}: resume a run that "
                    "`rollgraph exec --cache` with this cache printed",
                    file=sys.stderr,
                )
                return 2
            attempt += 1
            result = await eng.resume(
                workflow,
                args.resume,
                inputs,
                seed=args.seed,
                deadline_s=args.deadline,
                run_attempt=attempt,
            )
        else:
            attempt = 1
            result = await eng.run(workflow, inputs, seed=args.seed, deadline_s=args.deadline)
        if cache is not None:
            # How many times this run executed: a resume is the next attempt (a fresh draw of
            # the simulator's transient failures), and an unknown run id is an error.
            await cache.put(
                _ATTEMPTS_KEY.format(result.run_id), engine.CachedStep({}, attempts=attempt)
            )
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        data = result.to_json()
        print(render_waterfall(data["trace"]))
        print("outputs:")
        for name, value in (data["outputs"] or {}).items():
            print(f"  {name}: {json.dumps(value, default=str)}")
        if not result.ok and args.cache:
            print(f"resume with: {_resume_command(args, result.run_id)}")
    return 0 if result.ok else 1


def cmd_exec(args: argparse.Namespace) -> int:
    workflow, code = _load(args.file)
    if workflow is None:
        return code
    try:
        inputs = _parse_inputs(workflow, args.input)
        workflow.bind_inputs(inputs)
    except InputBindingError as exc:
        _print_problems(args.file, exc.problems)
        return 2
    except ValueError as exc:
        print(f"rollgraph: {exc}", file=sys.stderr)
        return 2
    if args.resume and not args.cache:
        print(
            "rollgraph: --resume needs --cache PATH (the step cache of the first run)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_exec(args, workflow, inputs))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rollgraph", description=__doc__)
    parser.add_argument(
        "--version",
        action="version",
        version=f"rollgraph {importlib.metadata.version('rollgraph')}",
        help="print rollgraph's version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="check workflow definitions; exit 1 when one is invalid")
    p.add_argument("files", nargs="+", metavar="FILE", help="workflow definitions (YAML or JSON)")
    p.add_argument("--json", action="store_true", help="print each file's verdict as JSON")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("exec", help="run a workflow locally with the embedded engine")
    p.add_argument("file", metavar="FILE", help="the workflow definition (YAML or JSON)")
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an input, parsed as its declared type",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document: outputs and trace")
    p.add_argument("--cache", metavar="PATH", help="SQLite step cache, so a failed run can resume")
    p.add_argument("--resume", metavar="RUN_ID", help="resume a failed run from --cache")
    p.add_argument("--seed", type=int, default=None, help="seed of the simulated providers")
    p.add_argument(
        "--deadline", type=float, default=None, metavar="SECONDS", help="end the run after this"
    )
    p.add_argument(
        "--time-scale", type=float, default=0.1, help="simulated latency factor (1 = realistic)"
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        type=_checked(parse_entry),
        metavar="HOST[:PORT|:*]",
        help="where http.json may connect (a bare host: its scheme's default port only)",
    )
    p.add_argument(
        "--allow-network",
        action="append",
        default=[],
        type=_checked(parse_network),
        metavar="CIDR",
        help="private or loopback addresses http.json may reach (e.g. 127.0.0.0/8)",
    )
    p.add_argument(
        "--concurrency",
        action="append",
        default=[],
        type=_concurrency_entry,
        metavar="PROVIDER=N",
        help="model calls in flight for that provider (e.g. sim=4); default: the provider's own",
    )
    p.set_defaults(func=cmd_exec)
    add_process_commands(sub)
    add_workflow_commands(sub)
    add_run_commands(sub)
    add_access_commands(sub)
    add_experiment_commands(sub)
    add_shadow_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # `rollgraph exec ... --json | head` is not an error
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
