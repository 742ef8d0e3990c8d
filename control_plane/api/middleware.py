"""Pure ASGI middleware: refuse request bodies over a configured size with 413, and add the
standard security headers to every response.

``BodySizeLimit`` checks ``Content-Length`` up front and the bytes actually received, so a
chunked upload without a length cannot get past the limit either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONSOLE_PREFIX", "DOCS_PATHS", "BodySizeLimit", "SecurityHeaders"]


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body exceeds {self.max_bytes} bytes",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# The interactive docs are HTML pages that run inline scripts (FastAPI's) and load Swagger UI /
# ReDoc (from /console/vendor, see control_plane.web.docs): the API's `default-src 'none'` would
# blank them. They get only `frame-ancestors 'none'` (no clickjacking); they hold no data, the
# key typed into them is sent to the API's paths.
DOCS_PATHS: Final = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_API_CSP: Final = b"default-src 'none'; frame-ancestors 'none'"
_DOCS_CSP: Final = b"frame-ancestors 'none'"
# ReDoc's bundle shows its vendor's logo from a CDN: images stay on this origin, so an offline
# or CDN-blocking network sees no request leave.
_REDOC_CSP: Final = b"img-src 'self' data:; frame-ancestors 'none'"
# The console: its own scripts only, no inline script; React Flow positions nodes with inline
# styles; it talks to this origin's API only.
CONSOLE_PREFIX: Final = "/console"
_CONSOLE_CSP: Final = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    b"form-action 'none'; frame-ancestors 'none'"
)
_ALWAYS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
_CREDENTIALS: Final = frozenset({b"authorization", b"x-api-key"})


class SecurityHeaders:
    """Adds ``X-Content-Type-Options``, ``X-Frame-Options``, ``Referrer-Policy``,
    ``Cross-Origin-Resource-Policy`` and ``Content-Security-Policy`` to every HTTP response
    (errors included), and ``Cache-Control: no-store`` to answers to a request that carried a
    key; a header the app set itself is kept."""

    def __init__(self, app: ASGIApp, *, docs_paths: Iterable[str] = DOCS_PATHS) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/redoc":
            csp = _REDOC_CSP
        elif path in self.docs_paths:
            csp = _DOCS_CSP
        elif path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/"):
            csp = _CONSOLE_CSP
        else:
            csp = _API_CSP
        extra = [*_ALWAYS, (b"content-security-policy", csp)]
        if any(name in _CREDENTIALS for name, _ in scope.get("headers", [])):
            extra.append((b"cache-control", b"no-store"))

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in extra if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured_send)
