"""``http.json``: call a JSON API on an allow-listed host.

Workflows are data that users (and experiments) edit, so a workflow must not be able to reach
arbitrary hosts: every URL is checked against the engine's allow-list before any I/O, and
redirects are not followed (the shared client is built that way), since a redirect could lead
off the list. Failures are split the way the retry policy needs them: transient ones (429, 5xx,
timeouts, dropped connections) are retryable, anything the caller got wrong is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from engine.context import NodeContext
from engine.errors import NodeError
from engine.node_kinds import NodeResult, Param, node_kind

__all__ = ["METHODS", "http_json"]

METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_TIMEOUT_S: Final = 30.0
_EXCERPT: Final = 200


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
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


def _check_status(response: httpx.Response, where: str) -> None:
    status = response.status_code
    if status == 429:
        retry_after = response.headers.get("retry-after")
        hint = f"; Retry-After: {retry_after}" if retry_after else ""
        raise NodeError(
            f"{where}: HTTP 429 rate limited{hint}", retryable=True, code="rate_limited"
        )
    if status >= 500:
        raise NodeError(
            f"{where}: HTTP {status}: {_excerpt(response)}", retryable=True, code="server_error"
        )
    if status >= 400:
        raise NodeError(f"{where}: HTTP {status}: {_excerpt(response)}", code="http_error")
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
        "timeout_s": Param.optional("number"),
    },
    outputs={"body": "json", "status": "integer"},
)
async def http_json(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Send a request to an allow-listed host and return its JSON body and status."""
    url = str(params["url"])
    ctx.check_host(url)  # before anything else, so a refused host never sees a packet
    method = str(params.get("method") or "GET").upper()
    if method not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise NodeError(f"http.json method {method!r} is not one of {allowed}", code="bad_input")
    if urlsplit(url).scheme not in {"http", "https"}:
        raise NodeError(f"http.json needs an http(s) URL, got {url!r}", code="bad_input")
    headers = _headers(params.get("headers"))
    timeout = _timeout(params.get("timeout_s"))
    where = f"{method} {url}"
    try:
        response = await ctx.http.request(
            method, url, json=params.get("body"), headers=headers, timeout=timeout
        )
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
    _check_status(response, where)
    if not response.content.strip():
        data: Any = None  # 204 No Content and friends: success without a body
    else:
        try:
            data = response.json()
        except ValueError:
            raise NodeError(
                f"{where}: HTTP {response.status_code} body is not JSON: {_excerpt(response)}",
                code="bad_response",
            ) from None
    return NodeResult(
        outputs={"body": data, "status": response.status_code},
        meta={"elapsed_s": round(response.elapsed.total_seconds(), 4)},
    )
