"""Which server the demo talks to: a rollgraph server that answers at ``ROLLGRAPH_URL``
(:func:`server_at`), else its own in this process (:func:`own_server`); and what to tell the
person running the demo when the server fails it (:func:`failure_message`).
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from control_plane.client import ApiError
from demos.experiments.scenarios import DemoError

__all__ = ["failure_message", "own_server", "server_at"]


def server_at(url: str) -> bool:
    """Whether a rollgraph server answers at ``url``. Nothing listening is ``False``; anything
    else that is not a ready server is a ``DemoError`` (the person meant some server)."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=3)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return False
    except httpx.HTTPError as exc:
        raise DemoError(f"ROLLGRAPH_URL={url} does not work ({type(exc).__name__}: {exc})") from exc
    if response.status_code != 200:
        raise DemoError(
            f"something answers at {url}, but GET /readyz says {response.status_code}: not a "
            "ready rollgraph server; set ROLLGRAPH_URL or pass --own-server"
        )
    return True


@contextlib.contextmanager
def own_server() -> Iterator[tuple[str, str]]:
    """A server in this process: a free loopback port, a temporary SQLite database, a simulator
    that does not sleep; yields ``(url, admin key)``, and stops it and deletes it on exit."""
    # Imported here: a demo against another server needs none of the server's code.
    import uvicorn

    import engine
    from control_plane.app import create_app
    from control_plane.settings import Settings
    from engine.providers import default_providers

    with tempfile.TemporaryDirectory(prefix="rollgraph-demo-") as tmp:
        settings = Settings(
            env="dev",
            database_url=f"sqlite:///{Path(tmp) / 'demo.db'}",
            admin_key=secrets.token_urlsafe(24),  # nobody else can act on this server
            # The demo evaluates after every batch; a background tick in between would act on
            # a half-reported batch and make the lines harder to follow.
            experiment_eval_s=3600.0,
        )
        app = create_app(
            settings, run_engine=lambda: engine.Engine(providers=default_providers(time_scale=0))
        )
        # Port 0: the kernel picks a free port as uvicorn binds it, so nothing can take it in
        # between. (A socket bound here and handed over would be slower: asyncio sets
        # TCP_NODELAY only on sockets made with IPPROTO_TCP, and delayed ACKs stall the rest.)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
        thread.start()
        try:
            yield _wait_started(server, thread), settings.admin_key
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def _wait_started(server: Any, thread: threading.Thread, timeout_s: float = 30.0) -> str:
    """The URL of an in-process uvicorn server once it listens and its store answers."""
    deadline = time.monotonic() + timeout_s
    url = None
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise DemoError("the demo's own server stopped while starting (see the log above)")
        if url is None and server.started:
            url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        if url is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
        time.sleep(0.05)
    raise DemoError(f"the demo's own server was not ready within {timeout_s:.0f} s")


def failure_message(exc: BaseException, url: str) -> str:
    """What went wrong, for the person running the demo against the server at ``url``."""
    if isinstance(exc, ApiError):
        hint = ""
        if exc.status in (401, 403):
            hint = "; set ROLLGRAPH_API_KEY to an admin key of that server, or pass --own-server"
        return f"the server at {url} said: {exc.message} [{exc.code}]{hint}"
    if isinstance(exc, httpx.HTTPError):
        return f"lost the server at {url} ({type(exc).__name__}: {exc})"
    return str(exc)
