"""``openai``: any OpenAI-compatible HTTP API (OpenAI itself, vLLM, Ollama, LiteLLM, ...).

Only the ``text`` (chat completions) and ``moderate`` (moderations) tasks are spoken here; media
tasks belong to providers with media APIs. HTTP failures are mapped onto ``NodeError`` so the
node's retry policy sees exactly the transient ones (429, 5xx, timeouts, dropped connections)
as retryable, and a bad request is not paid for twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from engine.errors import NodeError
from engine.providers.base import Estimate, ModelCall, ProviderResult

__all__ = ["DEFAULT_ANSWER_TOKENS", "OpenAIProvider"]

_DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
_TASKS: Final = frozenset({"text", "moderate"})
# Servers sometimes echo a (partially masked) key in 401 bodies; never pass one through.
_KEY_LIKE_RE: Final = re.compile(r"\bsk-[A-Za-z0-9_\-*.]{6,}")
_EXCERPT: Final = 300
# What a budget reserves for the answer of a chat call that sets no max_tokens.
DEFAULT_ANSWER_TOKENS: Final = 4096


class OpenAIProvider:
    """Chat completions and moderations against ``base_url``.

    Creating one does no I/O and needs no environment: the HTTP client is made on first use,
    so a default provider list can always be built, even where OpenAI is never called.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str = "openai",
        prices: Mapping[str, tuple[float, float]] | None = None,
        max_concurrency: int | None = None,
        timeout_s: float = 60.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        base = base_url or os.environ.get("OPENAI_BASE_URL") or _DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        self.name = name
        self.prices: dict[str, tuple[float, float]] = dict(prices or {})
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._client = client
        self._own_client = client is None

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks that print providers
        return f"OpenAIProvider(name={self.name!r}, base_url={self.base_url!r})"

    def supports(self, task: str) -> bool:
        return task in _TASKS

    def knows_model(self, model: str) -> bool | None:
        return None  # compatible servers host arbitrary models; only a call can tell

    async def aclose(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s))
        return self._client

    def estimate(self, call: ModelCall) -> Estimate | None:
        """An upper bound of a chat call's bill from the price table: the prompt at one token per
        three characters (tokenizers average about four), and ``max_tokens`` of answer, or
        ``DEFAULT_ANSWER_TOKENS`` when the call sets none. Moderation is free."""
        if call.task != "text":
            return Estimate() if call.task == "moderate" else None
        text = str(call.inputs.get("prompt") or "") + str(call.inputs.get("system") or "")
        tokens_in = float(-(-len(text) // 3))
        limit = call.inputs.get("max_tokens")
        tokens_out = float(limit if isinstance(limit, int) else DEFAULT_ANSWER_TOKENS)
        price_in, price_out = self.prices.get(call.model, (0.0, 0.0))
        cost = round(tokens_in / 1000 * price_in + tokens_out / 1000 * price_out, 10)
        return Estimate(cost_usd=cost, tokens=tokens_in + tokens_out)

    async def invoke(self, call: ModelCall) -> ProviderResult:
        if call.task == "text":
            return await self._chat(call)
        if call.task == "moderate":
            return await self._moderate(call)
        raise NodeError(
            f"{self.name} supports the text and moderate tasks, not {call.task!r}",
            code="unsupported_task",
        )

    async def _chat(self, call: ModelCall) -> ProviderResult:
        inputs = call.inputs
        messages: list[dict[str, str]] = []
        if inputs.get("system"):
            messages.append({"role": "system", "content": str(inputs["system"])})
        messages.append({"role": "user", "content": str(inputs.get("prompt") or "")})
        body: dict[str, Any] = {"model": call.model, "messages": messages}
        for key in ("max_tokens", "temperature"):
            if inputs.get(key) is not None:
                body[key] = inputs[key]
        data = await self._post(call, "/chat/completions", body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
            usage = data.get("usage") or {}
            tokens_in = float(usage.get("prompt_tokens", 0))
            tokens_out = float(usage.get("completion_tokens", 0))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._bad_response(call, f"no choices[0].message.content ({exc!r})") from None
        if not isinstance(text, str):
            raise self._bad_response(call, "choices[0].message.content is not a string")
        price_in, price_out = self.prices.get(call.model, (0.0, 0.0))
        meta: dict[str, Any] = {"finish_reason": choice.get("finish_reason")}
        if isinstance(data.get("id"), str):
            meta["response_id"] = data["id"]
        return ProviderResult(
            outputs={"text": text},
            cost_usd=round(tokens_in / 1000 * price_in + tokens_out / 1000 * price_out, 10),
            usage={"tokens_in": tokens_in, "tokens_out": tokens_out},
            meta=meta,
        )

    async def _moderate(self, call: ModelCall) -> ProviderResult:
        body = {"model": call.model, "input": str(call.inputs.get("text") or "")}
        data = await self._post(call, "/moderations", body)
        try:
            result = data["results"][0]
            flags: Mapping[str, Any] = result.get("categories") or {}
            scores = {k: float(v) for k, v in (result.get("category_scores") or {}).items()}
            outputs = {
                "flagged": bool(result["flagged"]),
                "categories": sorted(k for k, v in flags.items() if v),
                "scores": scores,
            }
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._bad_response(call, f"no results[0].flagged ({exc!r})") from None
        return ProviderResult(outputs=outputs)

    async def _post(self, call: ModelCall, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        where = f"{self.name}/{call.model}"
        try:
            response = await self._http.post(
                self.base_url + path, json=body, headers=headers, timeout=self.timeout_s
            )
        except httpx.TimeoutException:
            raise NodeError(
                f"{where}: no response within {self.timeout_s:g} s", retryable=True, code="timeout"
            ) from None
        except httpx.TransportError as exc:
            raise NodeError(
                f"{where}: could not reach {self.base_url}: {self._redact(str(exc))}",
                retryable=True,
                code="connection_error",
            ) from None
        status = response.status_code
        if status == 429:
            retry_after = response.headers.get("retry-after")
            hint = f"; Retry-After: {retry_after}" if retry_after else ""
            raise NodeError(
                f"{where}: rate limited (HTTP 429){hint}", retryable=True, code="rate_limited"
            )
        if status >= 500:
            raise NodeError(
                f"{where}: server error HTTP {status}: {self._server_message(response)}",
                retryable=True,
                code="server_error",
            )
        if status >= 400:
            raise NodeError(
                f"{where}: HTTP {status}: {self._server_message(response)}", code="bad_request"
            )
        try:
            data = response.json()
        except ValueError:
            raise self._bad_response(call, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise self._bad_response(call, "the body is not a JSON object")
        return data

    def _server_message(self, response: httpx.Response) -> str:
        """The ``error.message`` of an OpenAI-style error body, else an excerpt of the body."""
        message: str = response.text
        try:
            data = response.json()
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                message = error["message"]
            elif isinstance(error, str):
                message = error
        except ValueError:
            pass
        # Redact before cutting, so a key straddling the cut cannot leave half of itself behind.
        return self._redact(message.strip())[:_EXCERPT] or "(empty body)"

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return _KEY_LIKE_RE.sub("sk-***", text)

    def _bad_response(self, call: ModelCall, why: str) -> NodeError:
        return NodeError(
            f"{self.name}/{call.model}: malformed response from {self.base_url}: {why}",
            code="bad_response",
        )
