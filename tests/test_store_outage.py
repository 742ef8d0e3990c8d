"""A store that goes away is a 503 ``store_unavailable`` with ``Retry-After``, never a 500, and
the client's keep-alive connection survives it; when the store is back, so is the service.

A real ``rollgraph serve`` (uvicorn: a 500 from the catch-all closes the connection, which a
``TestClient`` cannot show) reaches PostgreSQL through a TCP relay owned by the test. Cutting
the relay (closing its listener and every relayed connection) is the outage: new connections
are refused and pooled ones are dropped, as when PostgreSQL stops; restarting it on the same
port ends the outage. This needs no private PostgreSQL instance and no privileges.

Redis refusing one call (for its arguments) is no outage either: the link's breaker stays
closed, so one bad request cannot refuse every client's async runs.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from typing import Any

import psycopg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from control_plane.store.failures import OUTAGES, as_unavailable
from control_plane.store.redis import RedisLink, RedisRejected
from tests.fixtures import GREET, REDIS_URL, bearer
from tests.processes import free_port


@pytest.mark.parametrize(
    ("outage", "code"),
    [
        (
            sa_exc.OperationalError("SELECT 1", {}, Exception("connection refused")),
            "store_unavailable",
        ),
        (
            sa_exc.OperationalError("x", {}, sqlite3.OperationalError("database is locked")),
            "store_busy",
        ),
        (
            sa_exc.InterfaceError("SELECT 1", {}, Exception("connection closed")),
            "store_unavailable",
        ),
        (sa_exc.TimeoutError("QueuePool limit of size 15 overflow 0 reached"), "store_unavailable"),
        (psycopg.OperationalError("server closed the connection"), "store_unavailable"),
    ],
    ids=["refused", "locked", "interface", "pool timeout", "psycopg"],
)
def test_every_outage_is_a_typed_503_with_retry_after(outage: Exception, code: str) -> None:
    assert isinstance(outage, OUTAGES)
    typed = as_unavailable(outage)
    assert (typed.status_code, typed.code) == (503, code)
    assert int(typed.headers()["Retry-After"]) >= 1
    assert "SELECT" not in typed.message  # names the class, never the statement


class Relay:
    """Relays 127.0.0.1:``port`` to ``target``, one thread per direction and connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.accepted = 0

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """The outage: refuse new connections and drop every relayed one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: close() alone does not wake the thread blocked in accept(),
            # which keeps the socket listening.
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # cut: the listener is closed
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open |= {client, upstream}
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def relay(database_url: str) -> Iterator[Relay]:
    url = make_url(database_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relay.start()
    yield relay
    relay.cut()


def request(
    conn: http.client.HTTPConnection, method: str, path: str, key: str, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    """One request on ``conn`` (kept open): status, headers, decoded body."""
    payload = None if body is None else json.dumps(body)
    headers = {**bearer(key), "content-type": "application/json"}
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, json.loads(data) if data else None


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_store_outage_is_a_503_on_an_open_connection_and_recovery_follows(
    database_url: str,
    relay: Relay,
    admin_key: str,
    serve: Callable[..., AbstractContextManager[str]],
) -> None:
    through_relay = make_url(database_url).set(host="127.0.0.1", port=relay.port)
    env = {
        "ROLLGRAPH_DATABASE_URL": through_relay.render_as_string(hide_password=False),
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
    }
    with serve(env) as url:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        try:
            outage_and_recovery(conn, relay, admin_key)
        finally:
            conn.close()


def outage_and_recovery(conn: http.client.HTTPConnection, relay: Relay, admin_key: str) -> None:
    status, _, _ = request(conn, "POST", "/v1/workflows", admin_key, {"source": GREET})
    assert status == 201
    status, _, _ = request(
        conn, "PUT", "/v1/workflows/greet/labels/prod", admin_key, {"version": "v1"}
    )
    assert status == 200
    run = {"workflow": "greet", "input": {"prompt": "x"}}
    status, _, stored = request(conn, "POST", "/v1/run", admin_key, run)
    assert status == 200, stored

    relay.cut()
    sock = conn.sock
    for method, path, body in [
        ("GET", "/v1/runs", None),
        ("GET", f"/v1/runs/{stored['run_id']}", None),
        ("GET", "/v1/workflows/greet/versions", None),
        ("POST", "/v1/run", run),
    ]:
        status, headers, answer = request(conn, method, path, admin_key, body)
        assert status == 503, (path, answer)
        assert answer["error"]["code"] == "store_unavailable", answer
        assert int(headers["retry-after"]) >= 1
        # The same connection carries the next request: no reconnect, no reset.
        assert conn.sock is sock and headers.get("connection") != "close"
    status, _, _ = request(conn, "GET", "/healthz", admin_key)
    assert status == 200 and conn.sock is sock

    relay.start()
    deadline = time.monotonic() + 30
    while True:
        status, _, runs = request(conn, "GET", "/v1/runs", admin_key)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, runs
    assert stored["run_id"] in [r["run_id"] for r in runs]


def test_redis_refusing_a_call_is_not_an_outage(redis_prefix: str) -> None:
    async def scenario() -> None:
        link = RedisLink(REDIS_URL, prefix=redis_prefix)
        try:
            await link.call("probe.add", lambda c: c.xadd(link.key("s"), {"a": "1"}))
            with pytest.raises(RedisRejected) as refused:
                await link.call(
                    "probe.range", lambda c: c.xrevrange(link.key("s"), max="(0-0", min="-")
                )
            assert refused.value.status_code == 502 and not refused.value.headers()
            assert link.up  # the breaker stayed closed: the next call goes to Redis
            assert await link.call("probe.len", lambda c: c.xlen(link.key("s"))) == 1
        finally:
            await link.aclose()

    asyncio.run(scenario())
