"""The provider interface: how model kinds reach a model, simulated or over HTTP.

A model kind (``video.generate``) names a task (``video``) and a model written
``provider/model`` (``sim/video-fast``). The engine looks the provider up, bounds how many calls
run against it at once, and hands it a ``ModelCall``. Providers raise ``NodeError`` with
``retryable=True`` for timeouts, rate limits and 5xx, so the node's retry policy applies to
exactly those.

Tasks and the inputs/outputs they exchange:

| task       | inputs                                          | outputs                          |
|------------|-------------------------------------------------|----------------------------------|
| `text`     | prompt, system?, max_tokens?, temperature?      | text                             |
| `image`    | prompt, width?, height?                         | image (MediaRef)                 |
| `video`    | prompt, seconds, image?                         | video (MediaRef)                 |
| `audio`    | script, voice?                                  | audio (MediaRef)                 |
| `music`    | prompt, seconds                                 | audio (MediaRef)                 |
| `moderate` | text                                            | flagged, categories, scores      |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "TASKS",
    "Estimate",
    "Estimating",
    "ModelCall",
    "Provider",
    "ProviderResult",
    "split_model",
]

TASKS = frozenset({"text", "image", "video", "audio", "music", "moderate"})


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One request to a model. ``seed`` and ``attempt`` make simulated runs reproducible."""

    task: str
    model: str
    inputs: Mapping[str, Any]
    seed: int = 0
    attempt: int = 1
    run_id: str = ""
    node: str = ""


@dataclass(slots=True)
class ProviderResult:
    outputs: dict[str, Any]
    cost_usd: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a call is expected to bill: dollars, tokens (in + out) and media seconds."""

    cost_usd: float = 0.0
    tokens: float = 0.0
    media_seconds: float = 0.0


@runtime_checkable
class Estimating(Protocol):
    """A provider that can say what a call will cost before making it."""

    def estimate(self, call: ModelCall) -> Estimate | None: ...


@runtime_checkable
class Provider(Protocol):
    """What the engine needs of a provider."""

    name: str
    max_concurrency: int | None

    def supports(self, task: str) -> bool: ...

    def knows_model(self, model: str) -> bool | None:
        """``True``/``False`` when the provider has a catalogue, ``None`` when it cannot tell."""
        ...

    async def invoke(self, call: ModelCall) -> ProviderResult: ...

    async def aclose(self) -> None: ...


def split_model(ref: str) -> tuple[str, str]:
    """``"sim/video-fast"`` → ``("sim", "video-fast")``; raise ``ValueError`` when malformed."""
    provider, sep, model = ref.partition("/")
    if not sep or not provider or not model:
        raise ValueError(f"model {ref!r} must be written provider/model, e.g. sim/writer-small")
    return provider, model
