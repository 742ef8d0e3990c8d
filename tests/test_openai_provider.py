"""The OpenAI-compatible provider against a real local HTTP server, one path per behaviour."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from engine.errors import NodeError
from engine.providers import ModelCall, OpenAIProvider, ProviderResult, default_providers

KEY = "sk-test-SECRET-0123456789abcdef"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[dict[str, Any]]
    release: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hanging up on the slow handler is expected, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        self.server.requests.append({"path": self.path, "body": body, "auth": auth})
        scenario, _, endpoint = self.path.strip("/").partition("/v1/")
        if scenario == "ok" and endpoint == "chat/completions":
            prompt = body["messages"][-1]["content"]
            self._send(200, {
                "id": "chatcmpl-1",
                "choices": [{"message": {"role": "assistant", "content": f"echo: {prompt}"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 300},
            })  # fmt: skip
        elif scenario == "ok" and endpoint == "moderations":
            self._send(200, {"results": [{
                "flagged": True,
                "categories": {"violence": True, "hate": False, "self-harm": True},
                "category_scores": {"violence": 0.97, "hate": 0.01, "self-harm": 0.8},
            }]})  # fmt: skip
        elif scenario == "ratelimit":
            self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"})
        elif scenario == "error500":
            self._send(500, {"error": {"message": "upstream exploded"}})
        elif scenario == "badrequest":
            # Some servers echo the credential they were sent; it must not reach the user.
            message = f"model 'nope' does not exist (you sent {auth})"
            self._send(400, {"error": {"message": message, "type": "invalid_request_error"}})
        elif scenario == "malformed":
            self._send(200, b"{this is not json")
        elif scenario == "wrongshape":
            self._send(200, {"choices": []})
        elif scenario == "slow":
            self.server.release.wait(5)
            self._send(200, {"choices": [{"message": {"content": "late"}}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.requests = []
    srv.release = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def base(server: _Server, scenario: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{scenario}/v1"


def run(provider: OpenAIProvider, call: ModelCall) -> ProviderResult:
    async def go() -> ProviderResult:
        try:
            return await provider.invoke(call)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def fail(provider: OpenAIProvider, call: ModelCall) -> NodeError:
    with pytest.raises(NodeError) as info:
        run(provider, call)
    assert KEY not in str(info.value)
    assert "SECRET" not in str(info.value)
    return info.value


TEXT = ModelCall(task="text", model="gpt-test", inputs={"prompt": "Say hi", "system": "Be terse"})


def test_chat_completion(server: _Server) -> None:
    provider = OpenAIProvider(
        base_url=base(server, "ok"), api_key=KEY, prices={"gpt-test": (0.5, 2.0)}
    )
    call = ModelCall("text", "gpt-test", {"prompt": "Say hi", "max_tokens": 50, "temperature": 0})
    result = run(provider, call)
    assert result.outputs == {"text": "echo: Say hi"}
    assert result.usage == {"tokens_in": 1200.0, "tokens_out": 300.0}
    assert result.cost_usd == pytest.approx(1.2 * 0.5 + 0.3 * 2.0)
    assert result.meta == {"finish_reason": "stop", "response_id": "chatcmpl-1"}
    sent = server.requests[-1]
    assert sent["auth"] == f"Bearer {KEY}"
    assert sent["body"] == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 50,
        "temperature": 0,
    }


def test_system_message_and_unknown_price(server: _Server) -> None:
    result = run(OpenAIProvider(base_url=base(server, "ok"), api_key=""), TEXT)
    assert result.cost_usd == 0.0
    assert result.usage["tokens_out"] == 300.0
    sent = server.requests[-1]
    assert sent["auth"] == ""  # no key, no header: local servers often need none
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be terse"}
    assert "max_tokens" not in sent["body"]


def test_moderation(server: _Server) -> None:
    provider = OpenAIProvider(base_url=base(server, "ok"), api_key=KEY)
    result = run(provider, ModelCall("moderate", "omni-moderation", {"text": "something"}))
    assert result.outputs["flagged"] is True
    assert result.outputs["categories"] == ["self-harm", "violence"]
    assert result.outputs["scores"]["violence"] == 0.97
    assert server.requests[-1]["body"] == {"model": "omni-moderation", "input": "something"}


def test_rate_limit_is_retryable_and_says_when(server: _Server) -> None:
    error = fail(OpenAIProvider(base_url=base(server, "ratelimit"), api_key=KEY), TEXT)
    assert (error.code, error.retryable) == ("rate_limited", True)
    assert "Retry-After: 7" in str(error)


def test_server_error_is_retryable(server: _Server) -> None:
    error = fail(OpenAIProvider(base_url=base(server, "error500"), api_key=KEY), TEXT)
    assert (error.code, error.retryable) == ("server_error", True)
    assert "500" in str(error)


def test_bad_request_is_final_and_never_leaks_the_key(server: _Server) -> None:
    error = fail(OpenAIProvider(base_url=base(server, "badrequest"), api_key=KEY), TEXT)
    assert (error.code, error.retryable) == ("bad_request", False)
    assert "model 'nope' does not exist" in str(error)
    assert "Bearer ***" in str(error)


@pytest.mark.parametrize("scenario", ["malformed", "wrongshape"])
def test_malformed_response_is_final(server: _Server, scenario: str) -> None:
    error = fail(OpenAIProvider(base_url=base(server, scenario), api_key=KEY), TEXT)
    assert (error.code, error.retryable) == ("bad_response", False)


def test_timeout_is_retryable(server: _Server) -> None:
    provider = OpenAIProvider(base_url=base(server, "slow"), api_key=KEY, timeout_s=0.1)
    error = fail(provider, TEXT)
    assert (error.code, error.retryable) == ("timeout", True)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIProvider(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
    error = fail(provider, TEXT)
    assert (error.code, error.retryable) == ("connection_error", True)


def test_injected_client_is_left_open(server: _Server) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            provider = OpenAIProvider(base_url=base(server, "ok"), client=client)
            await provider.invoke(TEXT)
            await provider.aclose()
            assert not client.is_closed

    asyncio.run(go())


def test_unsupported_task() -> None:
    provider = OpenAIProvider(api_key=KEY)
    assert provider.supports("text")
    assert provider.supports("moderate")
    assert not provider.supports("video")
    assert provider.knows_model("anything") is None
    error = fail(provider, ModelCall("video", "sora", {"prompt": "x"}))
    assert error.code == "unsupported_task"
    assert KEY not in repr(provider)


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch, server: _Server) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", base(server, "ok") + "/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    result = run(OpenAIProvider(), TEXT)
    assert result.outputs["text"] == "echo: Say hi"
    assert server.requests[-1]["auth"] == f"Bearer {KEY}"


def test_default_providers_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    sim, openai = default_providers(seed=5, time_scale=0)
    assert (sim.name, openai.name) == ("sim", "openai")
    assert isinstance(openai, OpenAIProvider)
    assert openai.base_url == "https://api.openai.com/v1"
    asyncio.run(openai.aclose())  # nothing was opened, so nothing to close
