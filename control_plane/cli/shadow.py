"""``rollgraph shadow start|stop|show``: run a candidate unseen beside a label's version, and
read how it compares, request by request."""

from __future__ import annotations

import argparse
import math
from typing import Any

from control_plane.cli.remote import add_json, emit, plain, remote_command, remote_options
from control_plane.client import SyncClient
from control_plane.client import models as m

__all__ = ["add_shadow_commands", "render_shadow"]

_NAME = "the workflow's name"
_LABEL = "the label (default: prod)"


def _finite(text: str) -> float:
    # NaN and infinity parse as floats but are no percent or cap (nor valid JSON to send).
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _settings(shadow: m.ShadowPublic) -> str:
    state = "running" if shadow.active else "stopped"
    return (
        f"{shadow.workflow}:{shadow.label}  served {shadow.served}  shadow {shadow.version} "
        f"{shadow.percent:g} % of users  [{state}]  cap ${shadow.max_cost_usd_per_hour:g}/h  "
        f"spent ${shadow.cost_usd_last_hour:.4g} in the last hour"
    )


def render_shadow(shadow: m.ShadowPublic, comparison: m.ShadowComparison) -> str:
    """The settings, then the comparison as a table and its verdict."""
    header = ("metric", "pairs", "served", "shadow", "difference", "p", "method")
    rows = [header]
    for c in comparison.metrics:
        rows.append(
            (
                c.metric, str(c.pairs), _num(c.served_mean), _num(c.shadow_mean),
                _num(c.mean_difference, 3), _num(c.p_value, 3),
                c.method if c.reason == "ok" else f"({c.reason})",
            )
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [_settings(shadow), f"{comparison.pairs} pairs of {comparison.shadow_version}"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [f"  - {c.verdict}" for c in comparison.metrics]
    lines.append(f"verdict: {comparison.verdict}")
    return "\n".join(lines)


def _start(client: SyncClient, args: argparse.Namespace) -> int:
    shadow = client.shadow_start(
        args.workflow,
        args.version,
        percent=args.percent,
        max_cost_usd_per_hour=args.max_cost_per_hour,
        label=args.label,
    )
    emit(args, shadow, lambda: f"shadowing started: {_settings(shadow)}")
    return 0


def _stop(client: SyncClient, args: argparse.Namespace) -> int:
    shadow = client.shadow_stop(args.workflow, label=args.label)
    emit(args, shadow, lambda: f"shadowing stopped: {_settings(shadow)}")
    return 0


def _show(client: SyncClient, args: argparse.Namespace) -> int:
    shadow = client.shadow_show(args.workflow, label=args.label)
    comparison = client.shadow_comparison(args.workflow, label=args.label)
    both = {"shadow": plain(shadow), "comparison": plain(comparison)}
    emit(args, both, lambda: render_shadow(shadow, comparison))
    return 0


def add_shadow_commands(sub: Any) -> None:
    shadow = sub.add_parser(
        "shadow", help="run a candidate unseen on a share of a label's requests, and compare"
    )
    commands = shadow.add_subparsers(dest="shadow_command", required=True)

    def command(name: str, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text, **kw)
        remote_options(p)
        add_json(p)
        p.add_argument("workflow", metavar="NAME", help=_NAME)
        return p

    p = command(
        "start",
        "start (or change) the label's shadow candidate",
        description="VERSION runs on a copy of the inputs of PERCENT of the label's users "
        "(sticky, a salt of its own) after each request was answered; its output reaches no "
        "caller. Past the hourly cost cap, shadow runs are dropped (counted).",
    )
    p.add_argument("version", metavar="VERSION", help="the version to shadow")
    p.add_argument("--percent", type=_finite, required=True, help="share of users, (0, 100]")
    p.add_argument(
        "--max-cost-per-hour", type=_finite, required=True, metavar="USD",
        help="the most the label's shadow runs may cost in an hour",
    )  # fmt: skip
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_start))
    p = command("stop", "stop shadowing the label (runs already started finish)")
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_stop))
    p = command("show", "the shadow's settings and its paired comparison with the served runs")
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_show))
