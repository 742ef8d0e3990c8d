"""``rollgraph serve`` and ``rollgraph worker``: the commands that start a process of the
control plane (the others talk to one over HTTP, ``cli.remote``)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import Any

__all__ = ["add_process_commands"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from control_plane.app import create_app
    from control_plane.runs.compiler import engine_settings_problem
    from control_plane.settings import bind_problem, get_settings, settings_problem

    # Checked here, once, before anything listens: one line on stderr, no traceback.
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"rollgraph serve: {settings_problem(exc)}", file=sys.stderr)
        return 2
    problem = bind_problem(settings, args.host) or engine_settings_problem(settings)
    if problem is not None:
        print(f"rollgraph serve: {problem}", file=sys.stderr)
        return 2
    if args.processes > 1:
        # Metrics of several server processes are merged from files (prometheus-client's
        # multiprocess mode): a fresh directory for this server unless the operator chose one
        # (which must be empty). Set before any process starts; the processes inherit it.
        own_dir = None
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            own_dir = tempfile.mkdtemp(prefix="rollgraph-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
        try:
            # Each process imports the app itself: uvicorn needs the factory's path.
            uvicorn.run(
                "control_plane.app:create_app",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.processes,
                log_level="info",
            )
        finally:
            if own_dir is not None:
                shutil.rmtree(own_dir, ignore_errors=True)
        return 0
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from control_plane.worker import main

    return main(args.name, args.concurrency, args.metrics_port, args.metrics_host)


def add_process_commands(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the API server (SQLite under var/ by default)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only)"
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    # "worker" means `rollgraph worker` (a queue consumer) everywhere else; --workers stays as
    # the spelling uvicorn users know.
    p.add_argument(
        "--processes",
        "--workers",
        dest="processes",
        type=_positive_int,
        default=1,
        help="server processes on this port, sharing one store (default: 1; alias --workers)",
    )
    p.set_defaults(func=_serve)
    p = sub.add_parser("worker", help="run queued async runs from Redis (needs REDIS_URL)")
    p.add_argument("--name", help="consumer name (default: host-pid)")
    p.add_argument("--concurrency", type=_positive_int, help="runs in flight (default: 4)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    p.set_defaults(func=_worker)
