"""``rollgraph apply|versions|diff|promote|rollback|assign`` and ``rollgraph rollout
set|status``: the workflow registry and its traffic from the shell."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from control_plane.cli.remote import add_json, emit, remote_command, remote_options, when
from control_plane.client import SyncClient, models

__all__ = ["add_workflow_commands"]


def _apply(client: SyncClient, args: argparse.Namespace) -> int:
    try:
        source = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"rollgraph: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    r = client.apply(source, version=args.version)
    verb = "created" if r.created else "unchanged"
    emit(args, r, lambda: f"{r.workflow} {r.version} {verb}: {r.message}")
    return 0


def _version_line(v: models.VersionPublic, tags: Sequence[str] = ()) -> str:
    line = f"{v.version:<10} {v.status:<9} {v.digest[:19]}  {when(v.created_at)}"
    return line + (f"  [{', '.join(sorted(tags))}]" if tags else "")


def _versions(client: SyncClient, args: argparse.Namespace) -> int:
    words: list[str] = args.words
    if words[0] == "archive" and len(words) == 3:
        archived = client.archive_version(words[1], words[2])
        emit(args, archived, lambda: f"{archived.workflow} {_version_line(archived)}")
        return 0
    if len(words) != 1:
        print(
            "rollgraph versions: give NAME (list its versions) or `archive NAME VERSION`",
            file=sys.stderr,
        )
        return 2
    listed = client.versions(words[0])
    labels: dict[str, list[str]] = {}
    for label in client.labels(words[0]):
        labels.setdefault(label.version, []).append(label.name)
    emit(
        args, listed, lambda: "\n".join(_version_line(v, labels.get(v.version, [])) for v in listed)
    )
    return 0


def _diff(client: SyncClient, args: argparse.Namespace) -> int:
    d = client.diff(args.workflow, args.a, args.b)

    def render() -> str:
        lines = [f"nodes added: {', '.join(d.nodes_added)}"] if d.nodes_added else []
        lines += [f"nodes removed: {', '.join(d.nodes_removed)}"] if d.nodes_removed else []
        return "\n".join([*lines, d.text or "(no differences)"])

    emit(args, d, render)
    return 0


def _promote(client: SyncClient, args: argparse.Namespace) -> int:
    label = client.promote(args.workflow, args.version, label=args.label)
    emit(args, label, lambda: f"{args.workflow} {label.name} → {label.version}")
    return 0


def _rollback(client: SyncClient, args: argparse.Namespace) -> int:
    label = client.rollback(args.workflow, label=args.label)
    emit(args, label, lambda: f"{args.workflow} {label.name} rolled back → {label.version}")
    return 0


def _rollout_line(r: models.RolloutPublic) -> str:
    parts = [f"{r.workflow} {r.label}: baseline {r.baseline}"]
    for c in r.candidates:
        parts.append(f"{c.version} {c.percent:g}%" + ("" if c.active else " (not serving)"))
    if not r.candidates:
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


def _rollout_set(client: SyncClient, args: argparse.Namespace) -> int:
    pairs: list[tuple[str, float]] = args.candidates
    if len(pairs) == 1:
        (version, percent), *_ = pairs
        rollout = client.rollout_set(args.workflow, version, percent, label=args.label)
    else:
        rollout = client.rollout_set_many(args.workflow, pairs, label=args.label)
    emit(args, rollout, lambda: _rollout_line(rollout))
    return 0


def _rollout_status(client: SyncClient, args: argparse.Namespace) -> int:
    rollout = client.rollout_status(args.workflow, label=args.label)
    emit(args, rollout, lambda: _rollout_line(rollout))
    return 0


def _assign(client: SyncClient, args: argparse.Namespace) -> int:
    preview = client.assignment(args.workflow, args.user, label=args.label)
    emit(
        args,
        preview,
        lambda: f"{preview.version}  ({preview.reason})\n{preview.explanation}",
    )
    return 0


_NAME = "the workflow's name"
_LABEL = "the label (default: prod)"


def add_workflow_commands(sub: Any) -> None:
    def command(parent: Any, name: str, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, **kw)
        remote_options(p)
        add_json(p)
        return p

    p = command(sub, "apply", "store a definition as a new immutable version")
    p.add_argument("file", metavar="FILE", help="the definition (YAML or JSON)")
    p.add_argument("--version", help="version label (default: the file's `version:` or next)")
    p.set_defaults(func=remote_command(_apply))
    p = command(
        sub,
        "versions",
        "list a workflow's versions and their labels, or archive one",
        description="`versions NAME` lists the versions; `versions archive NAME VERSION` "
        "archives one: it serves no traffic and no label may point at it (409 while one does); "
        "its runs stay readable.",
    )
    p.add_argument(
        "words", nargs="+", metavar="NAME | archive NAME VERSION", help="what to list or archive"
    )
    p.set_defaults(func=remote_command(_versions))
    p = command(sub, "diff", "diff two versions of a workflow")
    p.add_argument("workflow", metavar="NAME", help=_NAME)
    p.add_argument("a", metavar="A", help="the version to compare from")
    p.add_argument("b", metavar="B", help="the version to compare to")
    p.set_defaults(func=remote_command(_diff))
    p = command(sub, "promote", "point a label at a version")
    p.add_argument("workflow", metavar="NAME", help=_NAME)
    p.add_argument("version", metavar="VERSION", help="the version the label will point at")
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_promote))
    p = command(sub, "rollback", "move a label back to where it pointed before")
    p.add_argument("workflow", metavar="NAME", help=_NAME)
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_rollback))
    p = command(
        sub,
        "assign",
        "which version a user would get on a label, and why (no run)",
        description="Places USER as `POST /v1/run` would now (label, rollout bucket or "
        "experiment arm), prints the version and the figures behind it, and runs nothing.",
    )
    p.add_argument("workflow", metavar="NAME", help=_NAME)
    p.add_argument("--user", required=True, help="the user id (the sticky unit) to place")
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_assign))
    rollout = sub.add_parser("rollout", help="send shares of a label's traffic to candidates")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    p = command(
        rollout_sub,
        "set",
        "set the candidates and their percentages (replaces them; 0 ends the rollout)",
        description="Replace the label's candidates: `v3.3 10` sends 10 % of its traffic to "
        "v3.3, `v3.3 10 v3.4 5` splits 15 % between two candidates (percents sum to at most "
        "100); `v3.3 0` ends the rollout.",
    )
    p.add_argument("workflow", metavar="NAME", help=_NAME)
    p.add_argument(
        "candidates",
        nargs="+",
        action=_CandidatePairs,
        metavar="VERSION PERCENT",
        help="a candidate version and its percent of the label's traffic, repeated",
    )
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_rollout_set))
    p = command(rollout_sub, "status", "show a label's baseline and candidates")
    p.add_argument("workflow", metavar="NAME", help=_NAME)
    p.add_argument("--label", default="prod", help=_LABEL)
    p.set_defaults(func=remote_command(_rollout_status))
