"""Model kinds: one thin kind per provider task, each naming its model as ``provider/model``.

The kinds own the user-facing schema (names, types, defaults); the provider owns the call.
Keeping them this thin is what lets one workflow switch ``sim/writer-small`` for
``openai/gpt-4o-mini`` in an experiment arm without touching anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from engine.context import NodeContext
from engine.errors import NodeError
from engine.node_kinds import NodeResult, Param, node_kind
from engine.ranges import Range
from engine.types import MediaRef

__all__ = [
    "ENHANCE_SYSTEM",
    "audio_tts",
    "image_generate",
    "llm_generate",
    "moderate",
    "music_generate",
    "prompt_enhance",
    "video_generate",
]

_MODEL: Final = Param.of("text")
_VIDEO_SECONDS: Final = 8.0
_MUSIC_SECONDS: Final = 30.0
# Bounds a provider would refuse anyway, checked before anything is billed: a clip of at most
# ten minutes, a temperature in the range every major text API accepts, a reply of at most the
# largest output window on offer.
_MEDIA_SECONDS: Final = Range(0, 600, low_open=True)
_TEMPERATURE: Final = Range(0, 2)
_MAX_TOKENS: Final = Range(1, 128_000)
_PIXELS: Final = Range(16, 8192)

ENHANCE_SYSTEM: Final = (
    "You rewrite prompts for generative media models. Rewrite the user's prompt into one "
    "richer, more descriptive prompt: keep its subject and intent, add concrete visual and "
    "auditory detail, and reply with the rewritten prompt only."
)


def _pick(params: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    # Absent and None mean the same to a user. Not sending them lets the provider's own default
    # apply, and keeps a simulated result (seeded by its inputs) the same either way.
    return {name: params[name] for name in names if params.get(name) is not None}


async def _call(
    ctx: NodeContext, task: str, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> NodeResult:
    result = await ctx.call_model(task, str(params["model"]), inputs)
    return NodeResult(
        outputs=dict(result.outputs),
        cost_usd=result.cost_usd,
        usage=dict(result.usage),
        meta=dict(result.meta),
    )


def _expect(result: NodeResult, key: str, model: str, kind: type[Any] | None = None) -> Any:
    """Fail clearly when a provider's answer lacks what the kind promised downstream nodes."""
    value = result.outputs.get(key)
    if value is None or (kind is not None and not isinstance(value, kind)):
        got = type(value).__name__
        raise NodeError(
            f"{model} returned no usable {key!r} output (got {got})", code="bad_response"
        )
    return value


def _expect_media(result: NodeResult, key: str, model: str, kind: str) -> MediaRef:
    """A media output as a ``MediaRef``; providers may hand back a bare URI or a mapping."""
    value = _expect(result, key, model)
    try:
        ref = MediaRef.from_json(value, kind)
    except ValueError as exc:
        raise NodeError(
            f"{model} returned a bad {key!r} reference: {exc}", code="bad_response"
        ) from None
    if ref.kind != kind:
        raise NodeError(f"{model} returned a {ref.kind} as {key!r}", code="bad_response")
    return ref


@node_kind(
    "prompt.enhance",
    inputs={"model": _MODEL, "prompt": "text", "style": Param.optional("text")},
    outputs={"text": "text"},
    provider_task="text",
)
async def prompt_enhance(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Rewrite a prompt into a longer, more descriptive one with a text model."""
    system = ENHANCE_SYSTEM
    if params.get("style"):
        system += f" Write it in this style: {params['style']}."
    result = await _call(ctx, "text", params, {"prompt": params["prompt"], "system": system})
    text = _expect(result, "text", params["model"], str)
    result.outputs = {"text": text.strip()}
    return result


@node_kind(
    "llm.generate",
    inputs={
        "model": _MODEL,
        "prompt": "text",
        "system": Param.optional("text"),
        "max_tokens": Param.optional("integer", range=_MAX_TOKENS),
        "temperature": Param.optional("number", range=_TEMPERATURE),
    },
    outputs={"text": "text"},
    provider_task="text",
)
async def llm_generate(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Generate text from a prompt (and optional system message) with a text model."""
    inputs = _pick(params, ("prompt", "system", "max_tokens", "temperature"))
    result = await _call(ctx, "text", params, inputs)
    result.outputs = {"text": _expect(result, "text", params["model"], str)}
    return result


@node_kind(
    "image.generate",
    inputs={
        "model": _MODEL,
        "prompt": "text",
        "width": Param.optional("integer", range=_PIXELS),
        "height": Param.optional("integer", range=_PIXELS),
    },
    outputs={"image": "image"},
    provider_task="image",
)
async def image_generate(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Generate an image from a prompt."""
    result = await _call(ctx, "image", params, _pick(params, ("prompt", "width", "height")))
    result.outputs = {"image": _expect_media(result, "image", params["model"], "image")}
    return result


@node_kind(
    "video.generate",
    inputs={
        "model": _MODEL,
        "prompt": "text",
        "seconds": Param.optional("number", default=_VIDEO_SECONDS, range=_MEDIA_SECONDS),
        "image": Param.optional("image", description="a first frame to animate"),
    },
    outputs={"video": "video"},
    provider_task="video",
)
async def video_generate(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Generate a video clip from a prompt, optionally starting from an image."""
    inputs = _pick(params, ("prompt", "seconds", "image"))
    inputs.setdefault("seconds", _VIDEO_SECONDS)  # the video task always takes a length
    result = await _call(ctx, "video", params, inputs)
    result.outputs = {"video": _expect_media(result, "video", params["model"], "video")}
    return result


@node_kind(
    "audio.tts",
    inputs={"model": _MODEL, "script": "text", "voice": Param.optional("text")},
    outputs={"audio": "audio"},
    provider_task="audio",
)
async def audio_tts(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Speak a script with a text-to-speech model."""
    result = await _call(ctx, "audio", params, _pick(params, ("script", "voice")))
    result.outputs = {"audio": _expect_media(result, "audio", params["model"], "audio")}
    return result


@node_kind(
    "music.generate",
    inputs={
        "model": _MODEL,
        "prompt": "text",
        "seconds": Param.optional("number", default=_MUSIC_SECONDS, range=_MEDIA_SECONDS),
    },
    outputs={"audio": "audio"},
    provider_task="music",
)
async def music_generate(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Generate a music track from a prompt."""
    inputs = _pick(params, ("prompt", "seconds"))
    inputs.setdefault("seconds", _MUSIC_SECONDS)  # the music task always takes a length
    result = await _call(ctx, "music", params, inputs)
    result.outputs = {"audio": _expect_media(result, "audio", params["model"], "audio")}
    return result


@node_kind(
    "moderate",
    inputs={"model": _MODEL, "text": "text"},
    outputs={"flagged": "boolean", "categories": "list[text]"},
    provider_task="moderate",
)
async def moderate(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Check text against a moderation model; per-category scores go to the trace."""
    result = await _call(ctx, "moderate", params, {"text": params["text"]})
    flagged = _expect(result, "flagged", params["model"], bool)
    categories = [str(c) for c in result.outputs.get("categories") or []]
    if "scores" in result.outputs:
        result.meta["scores"] = result.outputs["scores"]
    result.outputs = {"flagged": flagged, "categories": categories}
    return result
