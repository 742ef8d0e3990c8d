"""Built-in kinds called directly with a NodeContext: model kinds, compose, template, http."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.context import NodeContext, Runtime
from engine.errors import NodeError
from engine.node_kinds import NodeResult, default_kinds
from engine.providers import SIM_MODELS, ModelCall, Provider, ProviderResult, SimProvider
from engine.types import MediaRef


class Recorder:
    """A provider that remembers what it was sent and answers with canned outputs."""

    name = "rec"
    max_concurrency: int | None = None

    def __init__(self, outputs: dict[str, Any]) -> None:
        self.outputs = outputs
        self.calls: list[ModelCall] = []

    def supports(self, task: str) -> bool:
        return True

    def knows_model(self, model: str) -> bool | None:
        return None

    async def invoke(self, call: ModelCall) -> ProviderResult:
        self.calls.append(call)
        return ProviderResult(outputs=dict(self.outputs), cost_usd=0.25, usage={"x": 1.0})

    async def aclose(self) -> None:
        pass


def run_kind(
    name: str, params: dict[str, Any], *, providers: list[Provider] | None = None
) -> NodeResult:
    kind = default_kinds.get(name)
    assert kind is not None, name

    async def go() -> NodeResult:
        runtime = Runtime(
            providers=providers or [SimProvider(time_scale=0, failure_rate=0.0)],
            kinds=default_kinds,
            http_allow_hosts=["127.0.0.1:*"],
        )
        try:
            ctx = NodeContext(runtime, "run-1", "n", seed=1, attempt=1)
            result = await kind.fn(ctx, params)
        finally:
            await runtime.aclose()
        assert isinstance(result, NodeResult)
        return result

    return asyncio.run(go())


def error_of(name: str, params: dict[str, Any], **kwargs: Any) -> NodeError:
    with pytest.raises(NodeError) as info:
        run_kind(name, params, **kwargs)
    return info.value


# -- model kinds ---------------------------------------------------------------------------


def test_model_kinds_are_registered_with_their_task() -> None:
    tasks = {
        "prompt.enhance": "text",
        "llm.generate": "text",
        "image.generate": "image",
        "video.generate": "video",
        "audio.tts": "audio",
        "music.generate": "music",
        "moderate": "moderate",
    }
    for name, task in tasks.items():
        kind = default_kinds.get(name)
        assert kind is not None
        assert kind.provider_task == task
        assert kind.inputs["model"].required
        assert str(kind.inputs["model"].type) == "text"


def test_prompt_enhance() -> None:
    result = run_kind("prompt.enhance", {"model": "sim/writer-large", "prompt": "a fox"})
    assert result.outputs["text"].startswith("a fox")
    assert len(result.outputs["text"]) > 3 * len("a fox")
    assert result.cost_usd > 0
    assert result.usage["tokens_in"] > 0
    assert 0 <= result.meta["quality"] <= 1


def test_prompt_enhance_sends_the_style_in_the_instruction() -> None:
    rec = Recorder({"text": "  richer fox  "})
    params = {"model": "rec/m", "prompt": "a fox", "style": "film noir"}
    result = run_kind("prompt.enhance", params, providers=[rec])
    assert result.outputs == {"text": "richer fox"}
    (call,) = rec.calls
    assert call.task == "text"
    assert call.inputs["prompt"] == "a fox"
    assert "film noir" in call.inputs["system"]


def test_llm_generate_omits_absent_options() -> None:
    rec = Recorder({"text": "hi"})
    params = {"model": "rec/m", "prompt": "p", "system": None, "max_tokens": 20}
    result = run_kind("llm.generate", params, providers=[rec])
    assert rec.calls[0].inputs == {"prompt": "p", "max_tokens": 20}
    assert (result.cost_usd, result.usage) == (0.25, {"x": 1.0})
    assert run_kind("llm.generate", {"model": "sim/writer-small", "prompt": "p"}).outputs["text"]


def test_image_generate() -> None:
    params = {"model": "sim/image-hq", "prompt": "a lighthouse", "width": 640, "height": None}
    result = run_kind("image.generate", params)
    image = result.outputs["image"]
    assert isinstance(image, MediaRef)
    assert (image.kind, image.width, image.height) == ("image", 640, 1024)
    assert result.cost_usd == SIM_MODELS["image-hq"].price_per_image


def test_video_generate_defaults_to_eight_seconds() -> None:
    result = run_kind("video.generate", {"model": "sim/video-fast", "prompt": "waves"})
    video = result.outputs["video"]
    assert (video.kind, video.duration_s) == ("video", 8.0)
    assert result.usage == {"media_seconds": 8.0}
    assert result.cost_usd == pytest.approx(8 * SIM_MODELS["video-fast"].price_per_media_second)


def test_video_generate_passes_a_first_frame() -> None:
    rec = Recorder({"video": "s3://bucket/clip.mp4"})  # a bare URI becomes a reference
    frame = MediaRef("image", "sim://image/abc.png")
    params = {"model": "rec/v", "prompt": "p", "seconds": 4, "image": frame}
    result = run_kind("video.generate", params, providers=[rec])
    assert rec.calls[0].inputs == {"prompt": "p", "seconds": 4, "image": frame}
    assert result.outputs["video"] == MediaRef("video", "s3://bucket/clip.mp4")


def test_audio_tts_and_music() -> None:
    speech = run_kind("audio.tts", {"model": "sim/voice-warm", "script": "hello world again"})
    assert speech.outputs["audio"].kind == "audio"
    assert speech.outputs["audio"].duration_s == pytest.approx(1.2)
    music = run_kind("music.generate", {"model": "sim/music-lofi", "prompt": "rain", "seconds": 12})
    assert music.outputs["audio"].duration_s == 12.0
    assert music.outputs["audio"].uri.startswith("sim://music/")


def test_moderate() -> None:
    flagged = run_kind("moderate", {"model": "sim/moderator", "text": "plans to murder"})
    assert flagged.outputs == {"flagged": True, "categories": ["violence"]}
    assert flagged.meta["scores"]["violence"] > 0.8
    clean = run_kind("moderate", {"model": "sim/moderator", "text": "a picnic"})
    assert clean.outputs == {"flagged": False, "categories": []}


def test_model_kind_errors() -> None:
    assert error_of("llm.generate", {"model": "writer-small", "prompt": "p"}).code == "bad_model"
    unknown = error_of("llm.generate", {"model": "sim/writer-smal", "prompt": "p"})
    assert unknown.code == "unknown_model"
    broken = Recorder({"nothing": 1})
    bad = error_of("image.generate", {"model": "rec/i", "prompt": "p"}, providers=[broken])
    assert (bad.code, bad.retryable) == ("bad_response", False)


# -- media.compose ---------------------------------------------------------------------------


def test_media_compose() -> None:
    video = MediaRef("video", "sim://video/v.mp4", "video/mp4", 8.0, 1280, 720)
    voice = MediaRef("audio", "sim://audio/a.mp3", duration_s=9.5)
    params = {"video": video, "audio": voice, "music": None, "title": "Foxes"}
    result = run_kind("media.compose", params)
    out = result.outputs["video"]
    assert out.uri.startswith("sim://compose/")
    assert out.uri.endswith(".mp4")
    assert (out.kind, out.duration_s, out.width) == ("video", 8.0, 1280)
    assert out.meta["sources"] == {"video": video.uri, "audio": voice.uri}
    assert result.cost_usd == 0.0
    assert run_kind("media.compose", params).outputs["video"].uri == out.uri
    retitled = run_kind("media.compose", {**params, "title": "Owls"}).outputs["video"]
    assert retitled.uri != out.uri


def test_media_compose_takes_the_longest_when_the_video_length_is_unknown() -> None:
    params = {
        "video": {"uri": "s3://b/v.mp4"},
        "audio": MediaRef("audio", "sim://audio/a.mp3", duration_s=3.0),
        "music": MediaRef("audio", "sim://music/m.mp3", duration_s=30.0),
    }
    assert run_kind("media.compose", params).outputs["video"].duration_s == 30.0
    wrong = error_of("media.compose", {"video": MediaRef("image", "sim://image/x.png")})
    assert wrong.code == "bad_input"


# -- template --------------------------------------------------------------------------------


def render(text: str, values: Mapping[str, Any] | None = None) -> str:
    result = run_kind("template", {"text": text, "values": values})
    text_out: str = result.outputs["text"]
    return text_out


def test_template_fills_placeholders() -> None:
    values = {"who": "fox", "n": 3, "ok": True, "tags": ["a", "b"]}
    assert render("{n} {who}es, ok={ok}, {tags}", values) == '3 foxes, ok=true, ["a", "b"]'
    assert render("no placeholders") == "no placeholders"


def test_template_brace_escapes_and_literal_braces() -> None:
    assert render("{{who}} is {who}", {"who": "fox"}) == "{who} is fox"
    assert render('json: {"a": 1} {} { who }', {"who": "x"}) == 'json: {"a": 1} {} { who }'


def test_template_missing_values_are_all_named() -> None:
    error = error_of("template", {"text": "{a} {b} {a}", "values": {"c": 1}})
    assert (error.code, error.retryable) == ("template_missing_value", False)
    assert "{a}, {b}" in str(error)
    assert "values given: c" in str(error)


@pytest.mark.parametrize("text", ["{x.__class__}", "{x[0]}", "{x.__class__.__mro__}"])
def test_template_refuses_attribute_and_index_access(text: str) -> None:
    error = error_of("template", {"text": text, "values": {"x": "s"}})
    assert (error.code, error.retryable) == ("template_unsupported", False)
    assert text in str(error)


def test_template_values_must_be_a_mapping() -> None:
    assert error_of("template", {"text": "{a}", "values": [1]}).code == "bad_input"


# -- http.json -------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, raw: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        if self.path == "/json":
            echo = {"method": self.command, "sent": sent, "tag": self.headers.get("X-Tag")}
            self._reply(200, json.dumps(echo).encode())
        elif self.path == "/empty":
            self._reply(204, b"")
        elif self.path == "/boom":
            self._reply(503, b"down for maintenance")
        elif self.path == "/busy":
            self._reply(429, b"{}")
        elif self.path == "/text":
            self._reply(200, b"<html>hello</html>")
        else:
            self._reply(404, b'{"error": "no such thing"}')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_http_json_get_and_post(url: str) -> None:
    got = run_kind("http.json", {"url": f"{url}/json"})
    assert got.outputs == {"status": 200, "body": {"method": "GET", "sent": None, "tag": None}}
    params = {"url": f"{url}/json", "method": "post", "body": {"a": [1]}, "headers": {"X-Tag": 7}}
    posted = run_kind("http.json", params)
    assert posted.outputs["body"] == {"method": "POST", "sent": {"a": [1]}, "tag": "7"}
    assert run_kind("http.json", {"url": f"{url}/empty", "method": "DELETE"}).outputs == {
        "status": 204,
        "body": None,
    }


def test_http_json_refuses_hosts_off_the_allow_list(url: str) -> None:
    error = error_of("http.json", {"url": url.replace("127.0.0.1", "localhost") + "/json"})
    assert (error.code, error.retryable) == ("host_not_allowed", False)


@pytest.mark.parametrize(
    ("path", "code", "retryable"),
    [
        ("/boom", "server_error", True),
        ("/busy", "rate_limited", True),
        ("/nope", "http_error", False),
        ("/text", "bad_response", False),
    ],
)
def test_http_json_failures(url: str, path: str, code: str, retryable: bool) -> None:
    error = error_of("http.json", {"url": f"{url}{path}"})
    assert (error.code, error.retryable) == (code, retryable)


def test_http_json_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = error_of("http.json", {"url": f"http://127.0.0.1:{port}/json"})
    assert (error.code, error.retryable) == ("connection_error", True)


def test_http_json_error_names_status_and_body(url: str) -> None:
    message = str(error_of("http.json", {"url": f"{url}/nope"}))
    assert "404" in message
    assert "no such thing" in message


def test_http_json_rejects_bad_methods_and_options(url: str) -> None:
    assert error_of("http.json", {"url": f"{url}/json", "method": "TRACE"}).code == "bad_input"
    bad_timeout = {"url": f"{url}/json", "timeout_s": -1}
    assert error_of("http.json", bad_timeout).code == "bad_input"
    assert error_of("http.json", {"url": f"{url}/json", "headers": "x"}).code == "bad_input"
