"""``rollgraph experiment start|list|status|decisions|resume|stop``.

``status`` prints the results table the API serves: per arm and metric n, mean, the effect
against the baseline with its interval, p-values; then the decision and its reasons.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from control_plane.cli.remote import add_json, emit, plain, remote_command, remote_options, when
from control_plane.client import SyncClient
from control_plane.experiments.schemas import EXPERIMENT_STATUSES

__all__ = ["add_experiment_commands", "render_results"]


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{float(value):.{digits}g}"


def render_results(results: dict[str, Any]) -> str:
    """The results as a terminal table, then the decision and its reasons."""
    e = results["experiment"]
    arms = ", ".join(f"{a['version']} {float(a['share']) * 100:g} %" for a in e["arms"])
    lines = [
        f"experiment {e['id']}  {e['name']}  [{e['status']}]",
        f"  {e['workflow']}:{e['label']}  baseline {e['baseline']}  candidates {arms}  "
        f"step {e['step']}  method {results['method']}",
    ]
    if results.get("srm") and results["srm"].get("p_value") is not None:
        srm = results["srm"]
        flag = "  MISMATCH" if srm["flagged"] else ""
        lines.append(f"  sample ratio p = {_num(srm['p_value'])} {srm['observed']}{flag}")
    header = ("arm", "metric", "role", "n", "mean", "effect", "95 % interval", "p", "adj. p")
    rows = [header]
    for m in results["metrics"]:
        interval = "-"
        if m.get("ci_low") is not None and m.get("ci_high") is not None:
            interval = f"[{_num(m['ci_low'], 3)}, {_num(m['ci_high'], 3)}]"
        rows.append(
            (
                m["arm"], m["metric"], m["role"], str(m["n"]), _num(m["mean"]),
                _num(m.get("effect"), 3), interval, _num(m.get("p_value"), 3),
                _num(m.get("adjusted_p"), 3) + (" *" if m.get("significant") else ""),
            )
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += _target_lines(results.get("targets") or [])
    if e.get("halt_reasons"):
        lines.append(f"halted at {str(e['halted_at'])[:19]}: resume or stop it")
    winner = f" ({results['winner']})" if results.get("winner") else ""
    applied = results.get("applied")
    at = f" at {str(results['decided_at'])[:19]}" if results.get("decided_at") else ""
    done = f" → {applied}{at}" if applied else ""
    lines.append(f"decision: {results['action']}{winner}{done}")
    lines += [f"  - {r['message']} [{r['code']}]" for r in results["reasons"]]
    return "\n".join(lines)


_TARGET_WORDS = {
    "p95_latency_s": ("p95 latency", "{:.4g} s"),
    "error_ratio": ("error ratio", "{:.4g}"),
    "cost_per_run_usd": ("cost per run", "${:.4g}"),
}


def _target_lines(shown: list[dict[str, Any]]) -> list[str]:
    """One line per arm whose version sets targets: each figure against its target."""
    lines = []
    for arm in shown:
        parts = []
        for figure in arm["figures"]:
            if figure["target"] is None:
                continue
            words, fmt = _TARGET_WORDS.get(figure["name"], (figure["name"], "{:.4g}"))
            measured = "-" if figure["measured"] is None else fmt.format(figure["measured"])
            verdict = {True: "met", False: "MISSED", None: "no runs"}[figure["met"]]
            parts.append(f"{words} {measured} (target {fmt.format(figure['target'])}) {verdict}")
        if parts:
            lines.append(f"targets {arm['version']} ({arm['runs']} runs): " + "; ".join(parts))
    return lines


def _start(client: SyncClient, args: argparse.Namespace) -> int:
    try:
        body = yaml.safe_load(Path(args.file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        print(f"rollgraph: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    except RecursionError:  # PyYAML composes by recursion: hundreds of levels exhaust it
        print(f"rollgraph: cannot read {args.file}: it is nested too deeply", file=sys.stderr)
        return 2
    if not isinstance(body, dict):
        print(f"rollgraph: {args.file} must hold a mapping (the experiment)", file=sys.stderr)
        return 2
    started = client.experiment_start(body)
    emit(args, started, lambda: f"experiment {started.id} started: {started.name}")
    return 0


def _list(client: SyncClient, args: argparse.Namespace) -> int:
    listed = client.experiments(workflow=args.workflow, status=args.status)
    emit(
        args,
        listed,
        lambda: "\n".join(
            f"{e.id:>5}  {e.status:<11}  {e.workflow}:{e.label}  {e.name}" for e in listed
        ),
    )
    return 0


def _status(client: SyncClient, args: argparse.Namespace) -> int:
    results = client.experiment_results(args.id)
    emit(args, results, lambda: render_results(plain(results)))
    return 0


def _decisions(client: SyncClient, args: argparse.Namespace) -> int:
    decisions = client.experiment_decisions(args.id)

    def render() -> str:
        lines = []
        for d in decisions:
            applied = f" → {d.applied}" if d.applied else ""
            lines.append(f"{when(d.at)}  step {d.step}  {d.action}{applied}")
            lines += [f"    {r['message']} [{r['code']}]" for r in d.reasons]
        return "\n".join(lines)

    emit(args, decisions, render)
    return 0


def _stop(client: SyncClient, args: argparse.Namespace) -> int:
    stopped = client.experiment_stop(args.id)
    emit(args, stopped, lambda: f"experiment {stopped.id} {stopped.status}")
    return 0


def _resume(client: SyncClient, args: argparse.Namespace) -> int:
    resumed = client.experiment_resume(args.id)
    codes = ", ".join(resumed.acknowledged) or "none"
    emit(args, resumed, lambda: f"experiment {resumed.id} {resumed.status} (acknowledged: {codes})")
    return 0


def add_experiment_commands(sub: Any) -> None:
    experiment = sub.add_parser("experiment", help="compare versions on live traffic")
    commands = experiment.add_subparsers(dest="experiment_command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        remote_options(p)
        add_json(p)
        return p

    experiment_id = "the experiment's id"
    p = command("start", "start an experiment from a YAML or JSON file")
    p.add_argument("file", metavar="FILE", help="the experiment (see the README)")
    p.set_defaults(func=remote_command(_start))
    p = command("list", "list experiments, newest first")
    p.add_argument("--workflow", help="only this workflow's")
    p.add_argument("--status", choices=EXPERIMENT_STATUSES, help="only those in this status")
    p.set_defaults(func=remote_command(_list))
    p = command("status", "the results table and the decision with its reasons")
    p.add_argument("id", type=int, metavar="ID", help=experiment_id)
    p.set_defaults(func=remote_command(_status))
    p = command("decisions", "the evaluator's decisions and actions")
    p.add_argument("id", type=int, metavar="ID", help=experiment_id)
    p.set_defaults(func=remote_command(_decisions))
    p = command("resume", "resume a halted experiment (its halt reasons halt it no more)")
    p.add_argument("id", type=int, metavar="ID", help=experiment_id)
    p.set_defaults(func=remote_command(_resume))
    p = command("stop", "end a running or halted experiment (the baseline gets all traffic)")
    p.add_argument("id", type=int, metavar="ID", help=experiment_id)
    p.set_defaults(func=remote_command(_stop))
