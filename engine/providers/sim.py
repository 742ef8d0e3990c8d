"""``sim``: a deterministic, seedable stand-in for real model providers.

Experiments, tests and benchmarks need providers that behave like the real thing (latency with a
long tail, occasional rate limits, per-token and per-second prices, a quality signal) without
network access or a bill. Every random draw comes from a ``random.Random`` seeded by a stable
hash of the call, so the same call always gives the same answer, and a retry (``attempt + 1``)
is a fresh draw that may succeed where the first attempt failed.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from engine.errors import NodeError
from engine.providers.base import TASKS, Estimate, ModelCall, ProviderResult
from engine.types import MediaRef

__all__ = ["SIM_MODELS", "SimModel", "SimProvider"]


@dataclass(frozen=True, slots=True)
class SimModel:
    """One simulated model: what it does, how long it takes, what it costs, how good it is."""

    task: str
    latency_median_s: float
    latency_sigma: float = 0.3
    price_per_call: float = 0.0
    price_per_1k_input_tokens: float = 0.0
    price_per_1k_output_tokens: float = 0.0
    price_per_media_second: float = 0.0
    price_per_image: float = 0.0
    failure_rate: float = 0.0
    quality: float = 0.5


# Prices and latencies are in the range of public offerings of each class, so that cost and
# latency trade-offs in simulated experiments look like the ones users will face for real.
SIM_MODELS: Final[Mapping[str, SimModel]] = MappingProxyType(
    {
        "writer-small": SimModel("text", 0.35, 0.30, price_per_1k_input_tokens=0.00015,
                                 price_per_1k_output_tokens=0.0006, failure_rate=0.01,
                                 quality=0.62),
        "writer-large": SimModel("text", 1.2, 0.35, price_per_1k_input_tokens=0.0025,
                                 price_per_1k_output_tokens=0.01, failure_rate=0.02,
                                 quality=0.86),
        "image-fast": SimModel("image", 1.2, 0.25, price_per_image=0.003, failure_rate=0.02,
                               quality=0.6),
        "image-hq": SimModel("image", 2.8, 0.30, price_per_image=0.04, failure_rate=0.03,
                             quality=0.87),
        "video-fast": SimModel("video", 6.0, 0.35, price_per_media_second=0.05,
                               failure_rate=0.04, quality=0.6),
        "video-hq": SimModel("video", 18.0, 0.40, price_per_media_second=0.35,
                             failure_rate=0.06, quality=0.88),
        "voice-warm": SimModel("audio", 1.1, 0.25, price_per_media_second=0.004,
                               failure_rate=0.02, quality=0.82),
        "voice-neutral": SimModel("audio", 0.8, 0.20, price_per_media_second=0.0005,
                                  failure_rate=0.01, quality=0.66),
        "music-lofi": SimModel("music", 4.0, 0.30, price_per_call=0.01,
                               price_per_media_second=0.001, failure_rate=0.03, quality=0.7),
        "moderator": SimModel("moderate", 0.15, 0.20, failure_rate=0.005, quality=0.9),
        # Evaluators' judge (engine.evaluation): billed as a small text model; its score is
        # the judged models' quality figures, not the text it writes.
        "judge": SimModel("text", 0.3, 0.20, price_per_1k_input_tokens=0.00015,
                          price_per_1k_output_tokens=0.0006, quality=0.8),
    }
)  # fmt: skip

# Appended by the text task: an "enhanced" prompt reads longer and more descriptive.
_DETAILS: Final = (
    "cinematic lighting", "soft golden-hour glow", "shallow depth of field", "rich textures",
    "vivid colour palette", "gentle camera movement", "wide establishing shot",
    "intimate close-up", "atmospheric haze", "high dynamic range", "natural skin tones",
    "crisp fine detail", "moody contrast", "warm ambient sound", "balanced composition",
    "subtle film grain", "dramatic backlight", "clean minimalist framing",
)  # fmt: skip

# Deliberately tiny: enough to exercise flagged paths in tests and demos, not a real filter.
_UNSAFE: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "violence": frozenset({"kill", "murder", "gore", "massacre", "bomb"}),
        "sexual": frozenset({"porn", "nude", "nsfw"}),
        "self-harm": frozenset({"suicide", "self-harm"}),
        "hate": frozenset({"nazi", "supremacist"}),
    }
)
_WORD_RE: Final = re.compile(r"[a-z]+(?:-[a-z]+)*")
_SPEECH_WORDS_PER_S: Final = 2.5  # about 150 words a minute
# The most words `_describe` adds to a prompt: "with", nine details of up to four words, "and".
_MAX_DETAIL_WORDS: Final = 2 + 9 * 4
_MEDIA: Final = {"image": ("png", "image/png"), "video": ("mp4", "video/mp4"),
                 "audio": ("mp3", "audio/mpeg"), "music": ("mp3", "audio/mpeg")}  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, MediaRef):
        return value.to_json()
    if isinstance(value, set | frozenset):
        return sorted(map(str, value))
    return str(value)


def _estimate_tokens(text: str) -> int:
    """Roughly what a tokenizer would count: four tokens for every three words."""
    words = len(text.split())
    return math.ceil(words * 4 / 3)


class SimProvider:
    """A provider named ``sim`` whose models are :data:`SIM_MODELS` (or ``models``)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        failure_rate: float | None = None,
        max_concurrency: int | None = None,
        models: Mapping[str, SimModel] | None = None,
    ) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        if failure_rate is not None and not 0.0 <= failure_rate <= 1.0:
            raise ValueError(f"failure_rate must be within [0, 1], got {failure_rate}")
        self.name = "sim"
        self.seed = seed
        self.time_scale = time_scale
        self.failure_rate = failure_rate
        self.max_concurrency = max_concurrency
        self.models: Mapping[str, SimModel] = dict(SIM_MODELS if models is None else models)
        for model_name, model in self.models.items():
            if model.task not in TASKS:
                raise ValueError(f"sim model {model_name!r} has unknown task {model.task!r}")
        self._tasks = frozenset(m.task for m in self.models.values())

    def supports(self, task: str) -> bool:
        return task in self._tasks

    def knows_model(self, model: str) -> bool | None:
        return model in self.models

    async def aclose(self) -> None:
        return None

    def _model(self, call: ModelCall) -> SimModel:
        model = self.models.get(call.model)
        if model is None:
            close = difflib.get_close_matches(call.model, list(self.models), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(self.models))
            raise NodeError(
                f"sim has no model {call.model!r}{hint} (models: {known})", code="unknown_model"
            )
        if model.task != call.task:
            raise NodeError(
                f"sim/{call.model} is a {model.task!r} model, not a {call.task!r} one",
                code="unsupported_task",
            )
        return model

    def _digest(self, call: ModelCall) -> bytes:
        # hashlib rather than hash(): str hashing is salted per process, and a result must not
        # change between the run that produced it and the one that replays it.
        inputs = json.dumps(
            dict(call.inputs), sort_keys=True, separators=(",", ":"), default=_jsonable
        )
        material = json.dumps([self.seed, call.seed, call.node, call.model, call.attempt, inputs])
        return hashlib.sha256(material.encode()).digest()

    async def invoke(self, call: ModelCall) -> ProviderResult:
        model = self._model(call)
        digest = self._digest(call)
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        latency = model.latency_median_s * math.exp(model.latency_sigma * rng.gauss(0.0, 1.0))
        rate = model.failure_rate if self.failure_rate is None else self.failure_rate
        if rng.random() < rate:
            # A failure still costs time (less than a full answer) but never money.
            await self._sleep(latency * 0.25)
            code = "rate_limited" if rng.random() < 0.5 else "server_error"
            raise NodeError(
                f"sim/{call.model}: simulated {code.replace('_', ' ')} "
                f"(attempt {call.attempt}); retry later",
                retryable=True,
                code=code,
            )
        outputs, usage = self._outputs(call, model, rng, digest.hex()[:16])
        await self._sleep(latency)
        quality = min(1.0, max(0.0, model.quality + rng.gauss(0.0, 0.03)))
        return ProviderResult(
            outputs=outputs,
            cost_usd=self.cost(model, usage),
            usage=usage,
            meta={"quality": round(quality, 4), "simulated_latency_s": round(latency, 4)},
        )

    async def _sleep(self, seconds: float) -> None:
        # Not even sleep(0) at scale 0: benchmarks should time the engine, not the event loop.
        if self.time_scale > 0:
            await asyncio.sleep(seconds * self.time_scale)

    def estimate(self, call: ModelCall) -> Estimate | None:
        """What ``call`` will bill, from the price table and its inputs, before it is made: exact
        for media (the length is an input), an upper bound for text (the longest answer the
        simulator writes for the prompt, or ``max_tokens``). ``None`` for an unknown model."""
        model = self.models.get(call.model)
        if model is None or model.task != call.task:
            return None
        inputs = call.inputs
        usage: dict[str, float] = {}
        if call.task == "text":
            prompt = str(inputs.get("prompt") or "")
            system = str(inputs.get("system") or "")
            usage["tokens_in"] = float(_estimate_tokens(prompt) + _estimate_tokens(system))
            longest = math.ceil((len(prompt.split()) + _MAX_DETAIL_WORDS) * 4 / 3)
            limit = inputs.get("max_tokens")
            usage["tokens_out"] = float(min(longest, limit) if isinstance(limit, int) else longest)
        elif call.task == "moderate":
            usage["tokens_in"] = float(_estimate_tokens(str(inputs.get("text") or "")))
        elif call.task == "image":
            usage["images"] = 1.0
        elif call.task == "audio":
            words = len(str(inputs.get("script") or "").split())
            usage["media_seconds"] = round(max(0.5, words / _SPEECH_WORDS_PER_S), 2)
        else:
            default = 8.0 if call.task == "video" else 30.0
            seconds = inputs.get("seconds")
            usage["media_seconds"] = float(seconds) if isinstance(seconds, int | float) else default
        return Estimate(
            cost_usd=self.cost(model, usage),
            tokens=usage.get("tokens_in", 0.0) + usage.get("tokens_out", 0.0),
            media_seconds=usage.get("media_seconds", 0.0),
        )

    @staticmethod
    def cost(model: SimModel, usage: Mapping[str, float]) -> float:
        """What ``usage`` costs on ``model`` according to its price table."""
        total = (
            model.price_per_call
            + usage.get("tokens_in", 0) / 1000 * model.price_per_1k_input_tokens
            + usage.get("tokens_out", 0) / 1000 * model.price_per_1k_output_tokens
            + usage.get("media_seconds", 0) * model.price_per_media_second
            + usage.get("images", 0) * model.price_per_image
        )
        return round(total, 10)

    def _outputs(
        self, call: ModelCall, model: SimModel, rng: random.Random, tag: str
    ) -> tuple[dict[str, Any], dict[str, float]]:
        task, inputs = call.task, call.inputs
        if task == "text":
            prompt = _require(call, "prompt")
            text = _describe(prompt, model.quality, rng, inputs.get("max_tokens"))
            tokens_in = _estimate_tokens(prompt) + _estimate_tokens(str(inputs.get("system") or ""))
            usage = {"tokens_in": float(tokens_in), "tokens_out": float(_estimate_tokens(text))}
            return {"text": text}, usage
        if task == "moderate":
            text = _require(call, "text")
            return _moderate(text, rng), {"tokens_in": float(_estimate_tokens(text))}
        ext, mime = _MEDIA[task]
        uri = f"sim://{task}/{tag}.{ext}"
        meta = {"model": f"{self.name}/{call.model}"}
        if task == "image":
            _require(call, "prompt")
            width = int(_number(call, "width", 1024))
            height = int(_number(call, "height", 1024))
            ref = MediaRef("image", uri, mime, width=width, height=height, meta=meta)
            return {"image": ref}, {"images": 1.0}
        if task == "video":
            _require(call, "prompt")
            seconds = _number(call, "seconds", 8.0)
            ref = MediaRef("video", uri, mime, seconds, 1280, 720, meta)
            return {"video": ref}, {"media_seconds": seconds}
        if task == "audio":
            script = _require(call, "script")
            seconds = round(max(0.5, len(script.split()) / _SPEECH_WORDS_PER_S), 2)
            voice = str(inputs.get("voice") or call.model)
            ref = MediaRef("audio", uri, mime, seconds, meta={**meta, "voice": voice})
            return {"audio": ref}, {"media_seconds": seconds}
        _require(call, "prompt")  # music
        seconds = _number(call, "seconds", 30.0)
        ref = MediaRef("audio", uri, mime, seconds, meta=meta)
        return {"audio": ref}, {"media_seconds": seconds}


def _require(call: ModelCall, key: str) -> str:
    value = call.inputs.get(key)
    if not isinstance(value, str) or not value.strip():
        raise NodeError(
            f"sim/{call.model}: the {call.task} task needs a non-empty {key!r}", code="bad_input"
        )
    return value


def _number(call: ModelCall, key: str, default: float) -> float:
    value = call.inputs.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise NodeError(
            f"sim/{call.model}: {key!r} must be a positive number, got {value!r}", code="bad_input"
        )
    return float(value)


def _describe(prompt: str, quality: float, rng: random.Random, max_tokens: Any) -> str:
    # Better models add more detail, which is what makes "enhanced" prompts longer.
    count = 3 + round(quality * 4) + rng.randint(0, 2)
    details = rng.sample(_DETAILS, k=min(count, len(_DETAILS)))
    text = f"{prompt.strip().rstrip('.')}, with {', '.join(details[:-1])} and {details[-1]}."
    if isinstance(max_tokens, int) and max_tokens > 0:
        words = text.split()
        limit = max(1, max_tokens * 3 // 4)
        text = " ".join(words[:limit])
    return text


def _moderate(text: str, rng: random.Random) -> dict[str, Any]:
    words = set(_WORD_RE.findall(text.lower()))
    categories = sorted(c for c, bad in _UNSAFE.items() if words & bad)
    scores = {
        c: round(0.85 + 0.14 * rng.random() if c in categories else 0.05 * rng.random(), 4)
        for c in sorted(_UNSAFE)
    }
    return {"flagged": bool(categories), "categories": categories, "scores": scores}
