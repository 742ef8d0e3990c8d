"""``rollgraph keys create|list|revoke`` and ``rollgraph audit``: access control from the shell.

All need an admin key (``--api-key`` or ``ROLLGRAPH_API_KEY``): the settings' admin key on a
fresh install, or a key created with ``--role admin``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from control_plane.cli.remote import add_json, emit, remote_command, remote_options, when
from control_plane.client import SyncClient, models

__all__ = ["add_access_commands"]


def _keys_create(client: SyncClient, args: argparse.Namespace) -> int:
    created = client.create_key(args.name, role=args.role)
    # The key alone on stdout, so `KEY=$(rollgraph keys create ci --role runner)` captures it;
    # the reminder goes to stderr.
    emit(args, created, lambda: created.key)
    print(
        f"rollgraph: key {created.name!r} ({created.role}) created; "
        "it is shown this once, store it now",
        file=sys.stderr,
    )
    return 0


def _key_line(k: models.KeyPublic) -> str:
    state = "active" if k.active else f"revoked {when(k.revoked_at)}"
    return (
        f"{k.name:<24} {k.role:<7} rg_{k.key_prefix}_…  {state:<27} "
        f"created {when(k.created_at)} by {k.created_by}"
    )


def _keys_list(client: SyncClient, args: argparse.Namespace) -> int:
    keys = client.keys()
    emit(args, keys, lambda: "\n".join(_key_line(k) for k in keys))
    return 0


def _keys_revoke(client: SyncClient, args: argparse.Namespace) -> int:
    revoked = client.revoke_key(args.name)
    emit(args, revoked, lambda: f"{revoked.name} revoked at {when(revoked.revoked_at)}")
    return 0


def _change(entry: models.AuditEntryPublic) -> str:
    def show(value: Any) -> str:
        return "∅" if value is None else json.dumps(value, separators=(",", ":"))

    return f"{show(entry.before)} → {show(entry.after)}"


def _audit(client: SyncClient, args: argparse.Namespace) -> int:
    entries = client.audit(
        target_kind=args.target_kind,
        target=args.target,
        actor=args.actor,
        since=args.since,
        limit=args.limit,
    )
    emit(
        args,
        entries,
        lambda: "\n".join(
            f"{when(e.at)}  {e.actor:<16} {e.action:<16} {e.target}  {_change(e)}" for e in entries
        ),
    )
    return 0


def add_access_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="API keys with roles: create, list, revoke (admin)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def command(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        remote_options(p)
        add_json(p)
        return p

    p = command(keys_sub, "create", "create a key and print it (shown this once)")
    p.add_argument("name", metavar="NAME", help="the key's name (the actor in the audit log)")
    p.add_argument(
        "--role",
        choices=["admin", "runner", "viewer"],
        required=True,
        help="admin: everything; runner: run and read; viewer: read",
    )
    p.set_defaults(func=remote_command(_keys_create))
    p = command(keys_sub, "list", "list keys (never the keys themselves)")
    p.set_defaults(func=remote_command(_keys_list))
    p = command(keys_sub, "revoke", "revoke a key: it gets 401 from now on")
    p.add_argument("name", metavar="NAME", help="the key's name")
    p.set_defaults(func=remote_command(_keys_revoke))
    p = command(sub, "audit", "who changed what, before and after, newest first (admin)")
    p.add_argument("--target-kind", help="version | label | rollout | api_key")
    p.add_argument("--target", help="e.g. product-video:prod")
    p.add_argument("--actor", help="a key's name")
    p.add_argument("--since", help="at or after (ISO 8601)")
    p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    p.set_defaults(func=remote_command(_audit))
