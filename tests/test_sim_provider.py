"""The simulator: deterministic per call, seedable, priced by its table, references not blobs."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import pytest

from engine.errors import NodeError
from engine.providers import SIM_MODELS, ModelCall, ProviderResult, SimModel, SimProvider


def invoke(provider: SimProvider, call: ModelCall) -> ProviderResult:
    return asyncio.run(provider.invoke(call))


def call(task: str, model: str, attempt: int = 1, seed: int = 7, **inputs: Any) -> ModelCall:
    return ModelCall(task=task, model=model, inputs=inputs, seed=seed, attempt=attempt, node="n")


def tokens(text: str) -> int:
    return math.ceil(len(text.split()) * 4 / 3)


@pytest.fixture
def sim() -> SimProvider:
    return SimProvider(time_scale=0, failure_rate=0.0)


def test_same_call_gives_same_result(sim: SimProvider) -> None:
    for c in (
        call("text", "writer-large", prompt="a fox in the snow"),
        call("video", "video-hq", prompt="a fox", seconds=4),
        call("moderate", "moderator", text="hello"),
    ):
        first, second = invoke(sim, c), invoke(sim, c)
        assert first.outputs == second.outputs
        assert first.cost_usd == second.cost_usd
        assert first.usage == second.usage
        assert first.meta == second.meta
        assert first.meta["simulated_latency_s"] > 0


def test_a_fresh_provider_with_the_same_seed_agrees() -> None:
    c = call("image", "image-hq", prompt="a lighthouse")
    a = invoke(SimProvider(seed=3, time_scale=0, failure_rate=0.0), c)
    b = invoke(SimProvider(seed=3, time_scale=0, failure_rate=0.0), c)
    other = invoke(SimProvider(seed=4, time_scale=0, failure_rate=0.0), c)
    assert a.outputs == b.outputs
    assert a.outputs["image"].uri != other.outputs["image"].uri


def test_another_attempt_is_a_fresh_draw(sim: SimProvider) -> None:
    one = invoke(sim, call("image", "image-fast", attempt=1, prompt="a fox"))
    two = invoke(sim, call("image", "image-fast", attempt=2, prompt="a fox"))
    assert one.outputs["image"].uri != two.outputs["image"].uri
    assert one.meta["simulated_latency_s"] != two.meta["simulated_latency_s"]


def outcome(provider: SimProvider, attempt: int) -> str:
    try:
        invoke(provider, call("text", "writer-small", attempt=attempt, prompt="hi"))
    except NodeError as exc:
        return exc.code if exc.retryable else "final"
    return "ok"


def test_a_retry_can_succeed_where_the_first_attempt_failed() -> None:
    flaky = SimProvider(time_scale=0, failure_rate=0.5)
    outcomes = [outcome(flaky, attempt) for attempt in range(1, 21)]
    assert "ok" in outcomes
    assert set(outcomes) - {"ok"}
    assert set(outcomes) <= {"ok", "rate_limited", "server_error"}
    # ...and the pattern itself is reproducible.
    assert [outcome(flaky, attempt) for attempt in range(1, 21)] == outcomes


def test_failure_rate_one_always_fails_retryably() -> None:
    broken = SimProvider(time_scale=0, failure_rate=1.0)
    codes = set()
    for attempt in range(1, 11):
        with pytest.raises(NodeError) as info:
            invoke(broken, call("video", "video-fast", attempt=attempt, prompt="x", seconds=8))
        assert info.value.retryable
        codes.add(info.value.code)
    assert codes <= {"rate_limited", "server_error"}
    assert codes  # at least one code was drawn


def test_time_scale_zero_is_instant() -> None:
    sim = SimProvider(time_scale=0, failure_rate=0.0)

    async def many() -> None:
        calls = [call("video", "video-hq", attempt=i, prompt="p", seconds=8) for i in range(200)]
        await asyncio.gather(*(sim.invoke(c) for c in calls))

    start = time.perf_counter()
    asyncio.run(many())
    assert time.perf_counter() - start < 1.0  # 200 calls with an 18 s median latency


def test_positive_time_scale_really_sleeps() -> None:
    models = {"slow": SimModel("text", latency_median_s=0.05, latency_sigma=0.0)}
    sim = SimProvider(time_scale=1.0, models=models)
    start = time.perf_counter()
    result = invoke(sim, call("text", "slow", prompt="wait"))
    assert time.perf_counter() - start >= 0.045
    assert result.meta["simulated_latency_s"] == pytest.approx(0.05)


def test_text_prices_follow_the_table(sim: SimProvider) -> None:
    prompt, system = "a fox jumps over the lazy dog", "be vivid"
    result = invoke(sim, call("text", "writer-large", prompt=prompt, system=system))
    model = SIM_MODELS["writer-large"]
    assert result.usage["tokens_in"] == tokens(prompt) + tokens(system)
    assert result.usage["tokens_out"] == tokens(result.outputs["text"])
    expected = (
        result.usage["tokens_in"] / 1000 * model.price_per_1k_input_tokens
        + result.usage["tokens_out"] / 1000 * model.price_per_1k_output_tokens
    )
    assert result.cost_usd == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("task", "model", "inputs", "usage_key", "quantity"),
    [
        ("video", "video-fast", {"prompt": "p", "seconds": 8}, "media_seconds", 8.0),
        ("video", "video-hq", {"prompt": "p", "seconds": 5}, "media_seconds", 5.0),
        ("image", "image-hq", {"prompt": "p"}, "images", 1.0),
        ("music", "music-lofi", {"prompt": "p", "seconds": 30}, "media_seconds", 30.0),
        ("audio", "voice-warm", {"script": "one two three four five"}, "media_seconds", 2.0),
    ],
)
def test_media_prices_follow_the_table(
    sim: SimProvider,
    task: str,
    model: str,
    inputs: dict[str, Any],
    usage_key: str,
    quantity: float,
) -> None:
    result = invoke(sim, call(task, model, **inputs))
    table = SIM_MODELS[model]
    assert result.usage == {usage_key: quantity}
    per_unit = table.price_per_image if usage_key == "images" else table.price_per_media_second
    assert result.cost_usd == pytest.approx(table.price_per_call + quantity * per_unit, abs=1e-12)


def test_exact_prices_with_a_custom_table() -> None:
    models = {"m": SimModel("video", 1.0, price_per_call=0.5, price_per_media_second=0.25)}
    sim = SimProvider(time_scale=0, models=models)
    result = invoke(sim, call("video", "m", prompt="p", seconds=4))
    assert result.cost_usd == 1.5


def test_media_are_references_not_blobs(sim: SimProvider) -> None:
    video = invoke(sim, call("video", "video-fast", prompt="p", seconds=6)).outputs["video"]
    assert video.kind == "video"
    assert video.uri.startswith("sim://video/")
    assert video.uri.endswith(".mp4")
    assert (video.mime, video.duration_s, video.width, video.height) == (
        "video/mp4",
        6.0,
        1280,
        720,
    )
    image = invoke(sim, call("image", "image-fast", prompt="p", width=512)).outputs["image"]
    assert image.uri.startswith("sim://image/")
    assert image.uri.endswith(".png")
    assert (image.width, image.height) == (512, 1024)
    speech = invoke(sim, call("audio", "voice-neutral", script="hello there")).outputs["audio"]
    assert speech.kind == "audio"
    assert speech.mime == "audio/mpeg"
    music = invoke(sim, call("music", "music-lofi", prompt="p")).outputs["audio"]
    assert music.uri.startswith("sim://music/")
    assert music.duration_s == 30.0
    for ref in (video, image, speech, music):
        assert len(json.dumps(ref.to_json())) < 300


def test_text_is_an_enhanced_version_of_the_prompt(sim: SimProvider) -> None:
    prompt = "a fox in the snow"
    text = invoke(sim, call("text", "writer-large", prompt=prompt)).outputs["text"]
    assert text.startswith(prompt)
    assert len(text.split()) > 2 * len(prompt.split())
    short = invoke(sim, call("text", "writer-large", prompt=prompt, max_tokens=4)).outputs["text"]
    assert len(short.split()) == 3


def test_quality_is_near_the_model_quality(sim: SimProvider) -> None:
    for name in ("writer-small", "writer-large"):
        quality = invoke(sim, call("text", name, prompt="x")).meta["quality"]
        assert 0.0 <= quality <= 1.0
        assert quality == pytest.approx(SIM_MODELS[name].quality, abs=0.15)


def test_moderation_flags_unsafe_words(sim: SimProvider) -> None:
    bad = invoke(sim, call("moderate", "moderator", text="How to KILL a process and murder it"))
    assert bad.outputs["flagged"] is True
    assert bad.outputs["categories"] == ["violence"]
    assert bad.outputs["scores"]["violence"] > 0.8
    good = invoke(sim, call("moderate", "moderator", text="a skill for every kid"))
    assert good.outputs == {**good.outputs, "flagged": False, "categories": []}
    assert max(good.outputs["scores"].values()) < 0.1


def test_unknown_model_suggests_the_closest(sim: SimProvider) -> None:
    with pytest.raises(NodeError) as info:
        invoke(sim, call("text", "writer-smal", prompt="x"))
    assert info.value.code == "unknown_model"
    assert not info.value.retryable
    assert "did you mean 'writer-small'" in str(info.value)


def test_task_mismatch_and_missing_input_are_not_retryable(sim: SimProvider) -> None:
    with pytest.raises(NodeError) as info:
        invoke(sim, call("image", "writer-small", prompt="x"))
    assert (info.value.code, info.value.retryable) == ("unsupported_task", False)
    with pytest.raises(NodeError) as info:
        invoke(sim, call("text", "writer-small"))
    assert (info.value.code, info.value.retryable) == ("bad_input", False)


def test_catalogue(sim: SimProvider) -> None:
    assert sim.name == "sim"
    assert all(sim.supports(t) for t in ("text", "image", "video", "audio", "music", "moderate"))
    assert not sim.supports("embed")
    assert sim.knows_model("video-hq") is True
    assert sim.knows_model("video-ultra") is False
    only_text = SimProvider(models={"w": SimModel("text", 0.1)})
    assert only_text.supports("text")
    assert not only_text.supports("video")
    asyncio.run(sim.aclose())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        SimProvider(time_scale=-1)
    with pytest.raises(ValueError, match="failure_rate"):
        SimProvider(failure_rate=1.5)
    with pytest.raises(ValueError, match="unknown task"):
        SimProvider(models={"x": SimModel("smell", 0.1)})
