"""``http.json``'s allow-list: host *and* port, resolved addresses checked, the checked address
connected to, redirects not followed. Real HTTP servers on loopback; the one fake is a DNS
answer for a name that does not exist (the network edge), to make a name rebind.

Before, allowing ``localhost`` opened every port of it (5432 included) and a name was never
resolved before the request, so any name pointing at a private address got through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

import engine
from control_plane.settings import Settings, settings_problem
from engine.http_policy import HttpPolicy, parse_entry, refused_reason
from tests.fixtures import app_client, apply


class Server(ThreadingHTTPServer):
    """A JSON server that records every request it is sent (path and Host header)."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), Handler)
        self.seen: list[tuple[str, str]] = []
        self.redirect_to = ""
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host", "")))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b'{"big": "' + b"x" * 5_000 + b'"}' if self.path == "/big" else b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def other() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def call(url: str, verify: ssl.SSLContext | None = None, **engine_kw: Any) -> dict[str, Any]:
    """One ``http.json`` node calling ``url``: its step as the trace records it. ``verify``:
    the TLS trust the engine's HTTP client uses (default: the system's)."""
    definition = {
        "name": "fetch",
        "nodes": {"get": {"uses": "http.json", "with": {"url": url}, "retry": {"max_attempts": 1}}},
        "outputs": {"body": "${get.body}"},
    }

    async def go() -> engine.RunResult:
        if verify is None:
            async with engine.Engine(providers=[], **engine_kw) as eng:
                return await eng.run(definition)
        async with (
            httpx.AsyncClient(verify=verify) as client,
            engine.Engine(providers=[], http_client=client, **engine_kw) as eng,
        ):
            return await eng.run(definition)

    result = asyncio.run(go())
    step: dict[str, Any] = result.trace.to_json()["steps"][0]
    step["outputs"] = result.outputs
    return step


def refused(step: dict[str, Any], says: str) -> None:
    assert step["status"] == "failed" and step["error_code"] == "host_not_allowed", step
    assert says in step["error"], step["error"]


def test_loopback_is_refused_by_default_and_sees_no_packet(server: Server) -> None:
    refused(call(f"http://127.0.0.1:{server.port}/"), "is not on the http allow-list")
    assert server.seen == []


def test_an_explicit_host_and_port_is_allowed_and_no_other_port(
    server: Server, other: Server
) -> None:
    allowed = [f"127.0.0.1:{server.port}"]
    step = call(f"http://127.0.0.1:{server.port}/", http_allow_hosts=allowed)
    assert step["status"] == "succeeded" and step["outputs"] == {"body": {"ok": True}}
    assert step["meta"]["address"] == "127.0.0.1"
    refused(call(f"http://127.0.0.1:{other.port}/", http_allow_hosts=allowed), "allow-list")
    assert other.seen == []


def test_a_bare_host_allows_only_its_schemes_default_port(server: Server) -> None:
    step = call(f"http://127.0.0.1:{server.port}/", http_allow_hosts=["127.0.0.1"])
    refused(step, f"127.0.0.1:{server.port} is not on the http allow-list")
    assert server.seen == []
    policy = HttpPolicy(["api.example.com"])
    assert policy.listed("api.example.com", 443, "https")
    assert policy.listed("api.example.com", 80, "http")
    assert not policy.listed("api.example.com", 80, "https")
    assert not policy.listed("api.example.com", 5432, "https")
    assert HttpPolicy(["db.internal:*"]).listed("db.internal", 5432, "http")


def test_a_name_resolving_to_loopback_is_refused_unless_its_network_is_allowed(
    server: Server,
) -> None:
    url = f"http://localhost:{server.port}/"
    listed = [f"localhost:{server.port}"]
    refused(call(url, http_allow_hosts=listed), "a loopback address")
    assert server.seen == []
    step = call(url, http_allow_hosts=listed, http_allow_networks=["127.0.0.0/8", "::1/128"])
    assert step["status"] == "succeeded", step
    # Connected to the checked address, naming the host it asked for.
    assert server.seen == [("/", f"localhost:{server.port}")]


def test_redirects_are_not_followed(server: Server, other: Server) -> None:
    server.redirect_to = f"http://127.0.0.1:{other.port}/"
    allowed = [f"127.0.0.1:{server.port}", f"127.0.0.1:{other.port}"]  # even to a listed place
    step = call(f"http://127.0.0.1:{server.port}/redirect", http_allow_hosts=allowed)
    assert step["status"] == "failed" and step["error_code"] == "http_redirect"
    assert server.seen == [("/redirect", f"127.0.0.1:{server.port}")]
    assert other.seen == []


def test_the_connection_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``rebind.test`` answers 127.0.0.2 (allowed) once, then 127.0.0.1 (not allowed), as a
    rebinding DNS server would. The request must reach the first answer's server, and the name
    must be resolved once."""
    pinned = Server("127.0.0.2")
    try:
        answers = iter(["127.0.0.2"])
        asked: list[str] = []
        real = socket.getaddrinfo

        def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != "rebind.test":
                return real(host, port, *args, **kwargs)
            asked.append(host)
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        step = call(
            f"http://rebind.test:{pinned.port}/",
            http_allow_hosts=[f"rebind.test:{pinned.port}"],
            http_allow_networks=["127.0.0.2/32"],
        )
        assert step["status"] == "succeeded", step
        assert pinned.seen == [("/", f"rebind.test:{pinned.port}")]
        assert asked == ["rebind.test"]
        step = call(
            f"http://rebind.test:{pinned.port}/",
            http_allow_hosts=[f"rebind.test:{pinned.port}"],
            http_allow_networks=["127.0.0.2/32"],
        )
        refused(step, "resolves to 127.0.0.1, a loopback address")  # the second answer
        assert len(pinned.seen) == 1
    finally:
        pinned.close()


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` (its own CA) and its key, made by the openssl command."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
            *("-addext", f"subjectAltName=DNS:{name}"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize("certified", ["secure.test", "other.test"])
def test_https_goes_to_the_checked_address_verified_against_the_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certified: str
) -> None:
    """``secure.test`` resolves to 127.0.0.1; the TLS server there holds a certificate for
    ``certified``. The request connects to the address but sends the name as SNI and verifies
    the certificate against it: it succeeds only when the certificate is the name's."""
    cert, key = self_signed(tmp_path, certified)
    server_names: list[str | None] = []
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    tls.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    srv = Server()
    srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "secure.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        step = call(
            f"https://secure.test:{srv.port}/",
            http_allow_hosts=[f"secure.test:{srv.port}"],
            http_allow_networks=["127.0.0.1/32"],
            verify=trusted,
        )
    finally:
        srv.close()
    assert server_names[:1] == ["secure.test"]
    if certified == "secure.test":
        assert step["status"] == "succeeded", step
        assert srv.seen == [("/", f"secure.test:{srv.port}")]
    else:
        assert step["error_code"] == "connection_error" and "CERTIFICATE" in step["error"]
        assert srv.seen == []


def test_a_server_takes_its_allow_list_from_its_settings(
    database_url: str, admin_key: str, server: Server, other: Server
) -> None:
    allowed = f"127.0.0.1:{server.port}"
    with app_client(database_url, admin_key, http_allow_hosts=allowed) as api:
        for name, port in (("open", server.port), ("closed", other.port)):
            source = json.dumps(
                {
                    "name": name,
                    "nodes": {
                        "get": {"uses": "http.json", "with": {"url": f"http://127.0.0.1:{port}/"}}
                    },
                    "outputs": {"body": "${get.body}"},
                }
            )
            apply(api, source, version="v1")
        answers = {
            name: api.post("/v1/run", json={"workflow": name, "version": "v1"}).json()
            for name in ("open", "closed")
        }
    assert answers["open"]["status"] == "succeeded", answers["open"]
    assert answers["open"]["outputs"] == {"body": {"ok": True}}
    assert answers["closed"]["status"] == "failed"
    assert f"127.0.0.1:{other.port} is not on the http allow-list" in answers["closed"]["error"]
    assert other.seen == []


def test_a_response_over_the_limit_is_refused(server: Server) -> None:
    step = call(
        f"http://127.0.0.1:{server.port}/big",
        http_allow_hosts=[f"127.0.0.1:{server.port}"],
        limits=engine.Limits(max_response_bytes=1_000),
    )
    assert step["status"] == "failed" and step["error_code"] == "too_large"
    assert "more than the limit of 1,000" in step["error"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_which_addresses_are_refused(address: str, reason: str | None) -> None:
    assert refused_reason(ipaddress.ip_address(address)) == reason


def test_entries_are_checked_where_they_are_given() -> None:
    assert parse_entry("API.example.com:443") == ("api.example.com", 443)
    assert parse_entry("[::1]:8080") == ("::1", 8080)
    assert parse_entry("example.com") == ("example.com", None)
    for bad in ("example.com:0", "example.com:http", "http://example.com", ""):
        with pytest.raises(ValueError, match="http allow-list entry"):
            parse_entry(bad)
    with pytest.raises(ValidationError) as caught:
        Settings(env="dev", http_allow_hosts="ok.example:443, bad:99999")
    assert settings_problem(caught.value) == (
        "ROLLGRAPH_HTTP_ALLOW_HOSTS: http allow-list entry 'bad:99999' has a bad port '99999'"
    )
    with pytest.raises(ValidationError) as caught:
        Settings(env="dev", http_allow_networks="10.0.0.0/33")
    assert settings_problem(caught.value).startswith("ROLLGRAPH_HTTP_ALLOW_NETWORKS: ")
    assert Settings(env="dev").http_allow_hosts == ""  # nowhere by default
