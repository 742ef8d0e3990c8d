"""``http.json``: call a JSON API on an allow-listed host.

Workflows are data that users (and experiments) edit, so a workflow must not be able to reach
arbitrary places: every URL's host and port are checked against the engine's allow-list and
the addresses its name resolves to are checked before any I/O, the request goes to the checked
address (``engine.http_policy``), and redirects are not followed, since a redirect could lead
off the list. The body is read up to the engine's ``max_response_bytes``. Failures are split
the way the retry policy needs them: transient ones (429, 5xx, timeouts, dropped connections)
are retryable, anything the caller got wrong is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import httpx

from engine.context import NodeContext
from engine.errors import NodeError
from engine.http_policy import Target
from engine.limits import LimitExceeded
from engine.node_kinds import NodeResult, Param, node_kind
from engine.ranges import Range

__all__ = ["METHODS", "http_json"]

METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_TIMEOUT_S: Final = 30.0
_EXCERPT: Final = 200


def _excerpt(content: bytes) -> str:
    text = " ".join(content.decode("utf-8", errors="replace").split())
    return (text[:_EXCERPT] + "…" if len(text) > _EXCERPT else text) or "(empty body)"


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise NodeError(
            f"http.json headers must be a mapping, got {type(value).__name__}", code="bad_input"
        )
    return {str(k): str(v) for k, v in value.items()}


def _timeout(value: Any) -> float:
    if value is None:
        return _DEFAULT_TIMEOUT_S
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise NodeError(
            f"http.json timeout_s must be a positive number, got {value!r}", code="bad_input"
        )
    return float(value)


def _check_status(response: httpx.Response, content: bytes, where: str) -> None:
    status = response.status_code
    if status == 429:
        retry_after = response.headers.get("retry-after")
        hint = f"; Retry-After: {retry_after}" if retry_after else ""
        raise NodeError(
            f"{where}: HTTP 429 rate limited{hint}", retryable=True, code="rate_limited"
        )
    if status >= 500:
        raise NodeError(
            f"{where}: HTTP {status}: {_excerpt(content)}", retryable=True, code="server_error"
        )
    if status >= 400:
        raise NodeError(f"{where}: HTTP {status}: {_excerpt(content)}", code="http_error")
    if 300 <= status < 400:
        location = response.headers.get("location", "?")
        raise NodeError(
            f"{where}: HTTP {status} redirect to {location} is not followed; "
            "call the final URL directly (its host must be on the allow-list)",
            code="http_redirect",
        )


@node_kind(
    "http.json",
    inputs={
        "url": Param.of("text"),
        "method": Param.optional("text", default="GET"),
        "body": Param.optional("json"),
        "headers": Param.optional("json"),
        "timeout_s": Param.optional("number", range=Range(0, 600, low_open=True)),
    },
    outputs={"body": "json", "status": "integer"},
)
async def http_json(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Send a request to an allow-listed host and return its JSON body and status."""
    url = str(params["url"])
    method = str(params.get("method") or "GET").upper()
    if method not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise NodeError(f"http.json method {method!r} is not one of {allowed}", code="bad_input")
    headers = _headers(params.get("headers"))
    timeout = _timeout(params.get("timeout_s"))
    # Before any request: host and port listed, addresses resolved and checked, the connection
    # pinned to a checked address (engine.http_policy), so a refused place never sees a packet.
    target = await ctx.http_target(url, timeout)
    headers = {k: v for k, v in headers.items() if k.lower() != "host"}
    headers["Host"] = target.host
    where = f"{method} {url}"
    limit = ctx.runtime.limits.max_response_bytes
    try:
        response, address = await _send(ctx, target, method, params.get("body"), headers, timeout)
        try:
            content = await _read_bounded(response, limit, where)
        finally:
            await response.aclose()
    except httpx.TimeoutException:
        raise NodeError(
            f"{where}: no response within {timeout:g} s", retryable=True, code="timeout"
        ) from None
    except httpx.TransportError as exc:
        raise NodeError(
            f"{where}: {type(exc).__name__}: {exc}", retryable=True, code="connection_error"
        ) from None
    except httpx.InvalidURL as exc:
        raise NodeError(f"{where}: invalid URL: {exc}", code="bad_input") from None
    _check_status(response, content, where)
    if not content.strip():
        data: Any = None  # 204 No Content and friends: success without a body
    else:
        try:
            data = json.loads(content)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
            raise NodeError(
                f"{where}: HTTP {response.status_code} body is not JSON: {_excerpt(content)}",
                code="bad_response",
            ) from None
    return NodeResult(
        outputs={"body": data, "status": response.status_code},
        meta={"elapsed_s": round(response.elapsed.total_seconds(), 4), "address": address},
    )


async def _send(
    ctx: NodeContext,
    target: Target,
    method: str,
    body: Any,
    headers: dict[str, str],
    timeout_s: float,
) -> tuple[httpx.Response, str]:
    """The response (its body unread) from the first checked address that accepts the
    connection, as a client tries a name's addresses in turn; and that address."""
    extensions = {"sni_hostname": target.sni} if target.sni else {}
    for i, address in enumerate(target.addresses):
        request = ctx.http.build_request(
            method,
            target.url(address),
            json=body,
            headers=headers,
            timeout=timeout_s,
            extensions=extensions,
        )
        try:
            return await ctx.http.send(request, stream=True, follow_redirects=False), address
        except httpx.ConnectError:
            if i == len(target.addresses) - 1:
                raise
    raise AssertionError("a target has at least one address")


async def _read_bounded(response: httpx.Response, limit: int, where: str) -> bytes:
    """The body, refused as soon as it is larger than ``limit`` bytes (never read whole)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise LimitExceeded(
            f"{where}: the response declares {int(declared):,} bytes, more than the limit of "
            f"{limit:,} (ROLLGRAPH_MAX_RESPONSE_BYTES on a server)"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise LimitExceeded(
                f"{where}: the response is larger than {limit:,} bytes (the limit; "
                "ROLLGRAPH_MAX_RESPONSE_BYTES on a server)"
            )
        chunks.append(chunk)
    return b"".join(chunks)
