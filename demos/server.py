"""A demo server: the API with the product-video example set up, as ``make run`` would show it.

    python -m demos.server                 # 127.0.0.1:8000, SQLite at var/rollgraph.db
    python -m demos.server --port 8001 --database-url sqlite:///var/other.db

It starts the server, waits until it is ready, applies ``examples/product-video/v3.2.yaml`` and
``v3.3.yaml`` through :class:`control_plane.client.Client` with the settings' admin key, points
``prod`` at v3.2, rolls v3.3 out to 10 % of ``prod``, prints how to call it, and serves until
interrupted (Ctrl-C stops it cleanly). On a database that already has all this, every step is a
no-op: the versions are unchanged, the label is already there, the rollout is left as it is.

Settings come from the environment as for ``rollgraph serve`` (``ROLLGRAPH_ENV``,
``ROLLGRAPH_ADMIN_KEY``, ``DATABASE_URL``...); the simulator runs at ``--time-scale`` 0.1 (a
product video takes about a second) unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

import engine
from control_plane.client import ApiError, Client
from control_plane.settings import DEV_ADMIN_KEY, Settings, get_settings
from engine.providers import default_providers

__all__ = ["main", "set_up", "usage"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "product-video"
WORKFLOW = "product-video"
BASELINE, CANDIDATE, PERCENT = "v3.2", "v3.3", 10.0


def set_up(client: Client, examples: Path = EXAMPLES) -> list[str]:
    """Apply both versions, point ``prod`` at the baseline, roll the candidate out to 10 %.

    Idempotent; returns one line per step saying what it did. Each write is committed before
    its response, so no step waits for the one before it to become visible."""
    lines = []
    for version in (BASELINE, CANDIDATE):
        source = (examples / f"{version}.yaml").read_text(encoding="utf-8")
        result = client.apply(source, version=version)
        verb = "applied" if result["created"] else "unchanged"
        lines.append(f"{result['workflow']} {result['version']} {verb}")
    labels = {label["name"]: label["version"] for label in client.labels(WORKFLOW)}
    if labels.get("prod") != BASELINE:
        client.promote(WORKFLOW, BASELINE, label="prod")
        lines.append(f"prod → {BASELINE}")
    else:
        lines.append(f"prod already on {BASELINE}")
    wanted = [{"version": CANDIDATE, "percent": PERCENT, "active": True}]
    if client.rollout_status(WORKFLOW, label="prod").get("candidates") != wanted:
        client.rollout_set(WORKFLOW, CANDIDATE, PERCENT, label="prod")
        lines.append(f"rollout on prod: {CANDIDATE} at {PERCENT:g} %")
    else:
        lines.append(f"rollout on prod already {CANDIDATE} at {PERCENT:g} %")
    return lines


def usage(url: str, admin_key: str, *, show_key: bool) -> str:
    """How to call the demo: curl and the ``rollgraph`` CLI."""
    key = admin_key if show_key else "$ROLLGRAPH_ADMIN_KEY"
    # A real key is left to the shell's expansion, so it is double-quoted; the placeholder is not.
    header = f"Authorization: Bearer {key}"
    quoted_key = shlex.quote(header) if show_key else f'"{header}"'
    body = json.dumps(
        {"workflow": WORKFLOW, "input": {"prompt": "a red sneaker"}, "user_id": "user-42"}
    )
    env = f"ROLLGRAPH_URL={url} ROLLGRAPH_API_KEY={shlex.quote(key) if show_key else key}"
    return "\n".join(
        [
            f"rollgraph demo serving at {url} (docs: {url}/docs); Ctrl-C stops it.",
            "",
            "Run the workflow (prod is v3.2; 10 % of user ids get v3.3, always the same ones):",
            f"  curl -s {url}/v1/run -H {quoted_key} \\",
            f"       -H 'Content-Type: application/json' -d '{body}'",
            "",
            "The same with the CLI:",
            f"  export {env}",
            '  rollgraph run product-video --input prompt="a red sneaker" --user user-42',
            "  rollgraph trace RUN_ID                      # the run's waterfall",
            "  rollgraph rollout status product-video",
            "  rollgraph rollout set product-video v3.3 20  # ramp to 20 %",
            "  rollgraph versions product-video",
            "  rollgraph diff product-video v3.2 v3.3",
            "  rollgraph promote product-video v3.3 --label prod",
            "  rollgraph rollback product-video --label prod",
        ]
    )


def _wait_ready(url: str, server: object, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if getattr(server, "should_exit", False):
            raise RuntimeError("the server stopped before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server at {url} was not ready within {timeout_s:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    from control_plane.app import create_app

    parser = argparse.ArgumentParser(prog="python -m demos.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--database-url", help="default: DATABASE_URL or var/rollgraph.db")
    parser.add_argument("--time-scale", type=float, default=0.1, help="simulator speed (1: real)")
    args = parser.parse_args(argv)
    try:
        settings = Settings(database_url=args.database_url) if args.database_url else get_settings()
    except ValueError as exc:  # e.g. a weak admin key outside dev
        print(f"rollgraph demo: {exc}", file=sys.stderr)
        return 2
    time_scale = args.time_scale
    app = create_app(
        settings,
        run_engine=lambda: engine.Engine(providers=default_providers(time_scale=time_scale)),
    )
    url = f"http://{args.host}:{args.port}"
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info"))
    failure: list[BaseException] = []

    def prepare() -> None:
        try:
            _wait_ready(url, server)
            with Client(url, settings.admin_key) as client:
                steps = set_up(client)
        except (ApiError, httpx.HTTPError, OSError, RuntimeError) as exc:
            failure.append(exc)
            print(f"rollgraph demo: set-up failed: {exc}", file=sys.stderr, flush=True)
            server.should_exit = True
            return
        for line in steps:
            print(line, flush=True)
        # Only the development placeholder is printed; a real key stays out of terminals/logs.
        show_key = settings.admin_key == DEV_ADMIN_KEY
        print("\n" + usage(url, settings.admin_key, show_key=show_key) + "\n", flush=True)

    helper = threading.Thread(target=prepare, name="demo-setup", daemon=True)
    helper.start()
    try:
        server.run()  # in the main thread: uvicorn handles Ctrl-C and SIGTERM, then shuts down
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl-C it captured once the shutdown (lifespan included) is done.
        print("rollgraph demo: stopped", flush=True)
    helper.join(timeout=5)
    return 1 if failure or not server.started else 0


if __name__ == "__main__":
    sys.exit(main())
