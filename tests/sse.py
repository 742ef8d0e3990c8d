"""Real servers in this process and a server-sent-events reader, for the run-events tests.

``served`` runs ``create_app`` under uvicorn on a free loopback port in a thread of its own
(its own event loop, as a replica's), so a test can give it an engine with the test's node
kinds and still talk HTTP to it, streaming included (a ``TestClient`` buffers a response until
it ends). ``events`` reads ``GET /v1/runs/{id}/events`` with httpx, frame by frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

import engine
from control_plane.settings import Settings
from tests.processes import free_port

__all__ = ["Event", "Served", "events", "served"]


@dataclass(frozen=True, slots=True)
class Event:
    """One frame: ``name`` is its ``event:`` (``comment`` for a ``: ...`` line, ``retry`` for a
    ``retry:`` field)."""

    name: str
    id: str | None
    data: dict[str, Any]
    received: float  # time.time() at arrival (the benchmark's only use of it)


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    app: FastAPI


@contextmanager
def served(settings: Settings, *, run_engine: Callable[[], engine.Engine]) -> Iterator[Served]:
    """``create_app(settings, run_engine=run_engine)`` served by uvicorn until the block ends."""
    from control_plane.app import create_app

    app = create_app(settings, run_engine=run_engine)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            if not thread.is_alive():
                raise AssertionError("the server stopped while starting")
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not start within 30 s")
        yield Served(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(30)


def parse(lines: Iterator[str]) -> Iterator[Event]:
    """Frames of an event stream, comments included."""
    name, ident, data = "message", None, list[str]()
    for line in lines:
        if line == "":
            if data:
                yield Event(name, ident, _json("\n".join(data)), time.time())
            name, data = "message", []
        elif line.startswith(":"):
            yield Event("comment", None, {"text": line[1:].strip()}, time.time())
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)
            elif field == "retry":
                yield Event("retry", None, {"ms": int(value)}, time.time())


def _json(text: str) -> dict[str, Any]:
    import json

    value = json.loads(text)
    assert isinstance(value, dict)
    return value


@contextmanager
def events(
    url: str,
    run_id: str,
    *,
    headers: dict[str, str],
    last_event_id: str | None = None,
    timeout_s: float = 30.0,
) -> Iterator[tuple[httpx.Response, Iterator[Event]]]:
    """The response to ``GET /v1/runs/{run_id}/events`` and its frames (empty unless 200)."""
    sent = dict(headers)
    if last_event_id is not None:
        sent["Last-Event-ID"] = last_event_id
    with (
        httpx.Client(base_url=url, timeout=timeout_s) as client,
        client.stream("GET", f"/v1/runs/{run_id}/events", headers=sent) as response,
    ):
        frames = parse(response.iter_lines()) if response.status_code == 200 else iter(())
        yield response, frames
