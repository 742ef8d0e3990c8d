"""``rollgraph keys create|list|revoke`` and ``rollgraph audit``: access control from the shell.

All need an admin key (``--api-key`` or ``ROLLGRAPH_API_KEY``): the settings' admin key on a
fresh install, or a key created with ``--role admin``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from control_plane.cli.remote import remote_command, remote_options
from control_plane.client import Client

__all__ = ["add_access_commands"]


def _keys_create(client: Client, args: argparse.Namespace) -> int:
    created = client.create_key(args.name, role=args.role)
    # The key alone on stdout, so `KEY=$(rollgraph keys create ci --role runner)` captures it;
    # the reminder goes to stderr.
    print(created["key"])
    print(
        f"rollgraph: key {created['name']!r} ({created['role']}) created; "
        "it is shown this once, store it now",
        file=sys.stderr,
    )
    return 0


def _keys_list(client: Client, args: argparse.Namespace) -> int:
    keys = client.keys()
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    for k in keys:
        state = "active" if k["active"] else f"revoked {k['revoked_at'][:19]}"
        print(
            f"{k['name']:<24} {k['role']:<7} rg_{k['key_prefix']}_…  {state:<27} "
            f"created {k['created_at'][:19]} by {k['created_by']}"
        )
    return 0


def _keys_revoke(client: Client, args: argparse.Namespace) -> int:
    revoked = client.revoke_key(args.name)
    print(f"{revoked['name']} revoked at {revoked['revoked_at'][:19]}")
    return 0


def _change(entry: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        return "∅" if value is None else json.dumps(value, separators=(",", ":"))

    return f"{show(entry['before'])} → {show(entry['after'])}"


def _audit(client: Client, args: argparse.Namespace) -> int:
    entries = client.audit(
        target_kind=args.target_kind,
        target=args.target,
        actor=args.actor,
        since=args.since,
        limit=args.limit,
    )
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        print(f"{e['at'][:19]}  {e['actor']:<16} {e['action']:<16} {e['target']}  {_change(e)}")
    return 0


def add_access_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="API keys with roles: create, list, revoke (admin)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    p = keys_sub.add_parser("create", help="create a key and print it (shown this once)")
    remote_options(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--role", choices=["admin", "runner", "viewer"], required=True)
    p.set_defaults(func=remote_command(_keys_create))
    p = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    remote_options(p)
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.set_defaults(func=remote_command(_keys_list))
    p = keys_sub.add_parser("revoke", help="revoke a key: it gets 401 from now on")
    remote_options(p)
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=remote_command(_keys_revoke))
    p = sub.add_parser("audit", help="who changed what, before and after, newest first (admin)")
    remote_options(p)
    p.add_argument("--target-kind", help="version | label | rollout | api_key")
    p.add_argument("--target", help="e.g. product-video:prod")
    p.add_argument("--actor", help="a key's name")
    p.add_argument("--since", help="at or after (ISO 8601)")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    p.set_defaults(func=remote_command(_audit))
