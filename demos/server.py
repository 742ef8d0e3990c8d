"""A demo server: the API with the product-video example set up, as ``make run`` would show it.

    python -m demos.server                 # 127.0.0.1:8000, SQLite at var/rollgraph.db
    python -m demos.server --port 8001 --database-url sqlite:///var/other.db

It starts the server and waits until it is ready. On a new store (no ``product-video`` yet) it
applies ``examples/product-video/v3.2.yaml`` and ``v3.3.yaml`` through
:class:`control_plane.client.SyncClient` with the settings' admin key, points ``prod`` at v3.2 and
rolls v3.3 out to 10 % of ``prod``. On a store that has ``product-video`` it changes nothing:
what the user did since (a promotion, a rollout, a rollback, a new version) is kept across
restarts. Either way it says which it did, prints how to call the server and how to put the
``rollgraph`` command on PATH, and serves until interrupted (Ctrl-C stops it cleanly).

Settings come from the environment as for ``rollgraph serve`` (``ROLLGRAPH_ENV``,
``ROLLGRAPH_ADMIN_KEY``, ``DATABASE_URL``...); the simulator runs at ``--time-scale`` 0.1 (a
product video takes about a second) unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from pydantic import ValidationError
from sqlalchemy.engine import make_url

import engine
from control_plane.client import ApiError, SyncClient
from control_plane.settings import DEV_ADMIN_KEY, Settings, get_settings, settings_problem
from engine.providers import default_providers

__all__ = ["cli_on_path", "main", "routing", "set_up", "usage"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "product-video"
WORKFLOW = "product-video"
BASELINE, CANDIDATE, PERCENT = "v3.2", "v3.3", 10.0


def routing(client: SyncClient) -> str:
    """Where ``prod`` of the workflow sends traffic, in words."""
    try:
        status = client.rollout_status(WORKFLOW, label="prod")
    except ApiError as exc:
        if exc.status == 404:
            return "no prod label"
        raise
    shares = [f"{c.version} for {c.percent:g} %" for c in status.candidates if c.active]
    rollout = f", {' and '.join(shares)} of user ids, always the same ones" if shares else ""
    return f"prod on {status.baseline}{rollout}"


def set_up(client: SyncClient, examples: Path = EXAMPLES) -> list[str]:
    """On a new store, apply both versions, point ``prod`` at the baseline and roll the
    candidate out to 10 %; on a store that already has the workflow, change nothing.

    Returns one line per step saying what it did (the first says which case it was). Each
    write is committed before its response, so no step waits for the one before it to become
    visible."""
    if any(workflow.name == WORKFLOW for workflow in client.workflows()):
        return [
            f"{WORKFLOW} is already in this store, kept as you left it: {routing(client)}. The "
            "examples are applied to a new store only."
        ]
    lines = [f"a new store: applying the examples to {WORKFLOW}"]
    for version in (BASELINE, CANDIDATE):
        source = (examples / f"{version}.yaml").read_text(encoding="utf-8")
        result = client.apply(source, version=version)
        verb = "applied" if result.created else "unchanged"
        lines.append(f"{result.workflow} {result.version} {verb}")
    client.promote(WORKFLOW, BASELINE, label="prod")
    lines.append(f"prod → {BASELINE}")
    client.rollout_set(WORKFLOW, CANDIDATE, PERCENT, label="prod")
    lines.append(f"rollout on prod: {CANDIDATE} at {PERCENT:g} %")
    return lines


def cli_on_path() -> str:
    """How to run the ``rollgraph`` command installed beside this Python (``make run``'s
    ``.venv``), which is not on PATH until the virtual environment is activated."""
    bin_dir = Path(sys.executable).parent
    command = bin_dir / "rollgraph"
    found = shutil.which("rollgraph")
    if found is not None and Path(found).parent == bin_dir:
        return "`rollgraph` is on PATH."
    if not command.exists():
        return "Install the `rollgraph` command with `pip install .` in the repository."
    shown = Path(os.path.relpath(bin_dir)) if bin_dir.is_relative_to(Path.cwd()) else bin_dir
    if (bin_dir / "activate").exists():
        return (
            f"`rollgraph` is in {shown}/, not on PATH: `source {shown}/activate` puts it there "
            f"(or call {shown}/rollgraph)."
        )
    return f"`rollgraph` is not on PATH: call {command}."


def usage(url: str, admin_key: str, *, show_key: bool, routes: str) -> str:
    """How to call the demo: curl and the ``rollgraph`` CLI; ``routes`` says where ``prod``
    sends traffic (:func:`routing`)."""
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
            f"The console: {url}/console (sign in with the admin key below).",
            "",
            f"Run the workflow ({routes}):",
            f"  curl -s {url}/v1/run -H {quoted_key} \\",
            f"       -H 'Content-Type: application/json' -d '{body}'",
            "",
            cli_on_path(),
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
    except ValidationError as exc:  # e.g. a weak admin key outside dev: one line, no key shown
        print(f"rollgraph demo: {settings_problem(exc)}", file=sys.stderr)
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
            with SyncClient(url, settings.admin_key) as client:
                steps = set_up(client)
                routes = routing(client)
        except (ApiError, httpx.HTTPError, OSError, RuntimeError) as exc:
            failure.append(exc)
            print(f"rollgraph demo: set-up failed: {exc}", file=sys.stderr, flush=True)
            server.should_exit = True
            return
        print(
            f"store: {make_url(settings.database_url).render_as_string(hide_password=True)}",
            flush=True,
        )
        for line in steps:
            print(line, flush=True)
        # Only the development placeholder is printed; a real key stays out of terminals/logs.
        show_key = settings.admin_key == DEV_ADMIN_KEY
        text = usage(url, settings.admin_key, show_key=show_key, routes=routes)
        print("\n" + text + "\n", flush=True)

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
