"""``rollgraph`` commands that talk to a server: serve, apply, versions, diff, promote, rollback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from control_plane.client import ApiError, Client

__all__ = ["add_remote_commands"]

DEFAULT_URL = "http://127.0.0.1:8000"


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.api_key)


def _remote(command: Callable[[Client, argparse.Namespace], int]) -> Callable[..., int]:
    """Run a command against the server, turning its errors into messages and exit codes."""

    def run(args: argparse.Namespace) -> int:
        try:
            with _client(args) as client:
                return command(client, args)
        except ApiError as exc:
            print(f"rollgraph: {exc.message} [{exc.code}]", file=sys.stderr)
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


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from control_plane.api import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
    return 0


def add_remote_commands(sub: Any) -> None:
    def remote_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        p.add_argument("--url", default=os.environ.get("ROLLGRAPH_URL", DEFAULT_URL))
        p.add_argument("--api-key", default=os.environ.get("ROLLGRAPH_API_KEY"))
        return p

    p = sub.add_parser("serve", help="run the API server (SQLite under var/ by default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_serve)
    p = remote_parser("apply", "store a definition as a new immutable version")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--version", help="version label (default: the file's `version:` or next)")
    p.set_defaults(func=_remote(_apply))
    p = remote_parser("versions", "list a workflow's versions and their labels")
    p.add_argument("workflow", metavar="NAME")
    p.set_defaults(func=_remote(_versions))
    p = remote_parser("diff", "diff two versions of a workflow")
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.set_defaults(func=_remote(_diff))
    p = remote_parser("promote", "point a label at a version")
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--label", default="prod")
    p.set_defaults(func=_remote(_promote))
    p = remote_parser("rollback", "move a label back to where it pointed before")
    p.add_argument("workflow", metavar="NAME")
    p.add_argument("--label", default="prod")
    p.set_defaults(func=_remote(_rollback))
