"""``media.compose``: lay narration, music and a title over a video, as a reference.

This is the local, free step at the end of most media pipelines. The engine holds references,
not bytes, so composing here means naming the result deterministically from its sources: the
same sources always compose to the same URI, which is what makes the step cacheable and a
replayed run byte-for-byte comparable. Rendering the actual file is the job of whatever serves
``sim://compose/...`` (or a user's own kind that calls a real editor).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from engine.context import NodeContext
from engine.errors import NodeError
from engine.node_kinds import NodeResult, Param, node_kind
from engine.types import MediaRef

__all__ = ["compose_uri", "media_compose"]

_SOURCES: Final = (("video", "video"), ("audio", "audio"), ("music", "audio"))


def _ref(params: dict[str, Any], key: str, kind: str) -> MediaRef | None:
    value = params.get(key)
    if value is None:
        return None
    try:
        ref = MediaRef.from_json(value, kind)
    except ValueError as exc:
        raise NodeError(f"media.compose: {key}: {exc}", code="bad_input") from None
    if ref.kind != kind:
        raise NodeError(
            f"media.compose: {key} must be {kind}, got a {ref.kind} reference", code="bad_input"
        )
    return ref


def compose_uri(sources: dict[str, MediaRef], title: str | None) -> str:
    """The URI a composition of ``sources`` (and ``title``) is known by."""
    material = json.dumps(
        {"sources": {k: r.uri for k, r in sorted(sources.items())}, "title": title},
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"sim://compose/{hashlib.sha256(material.encode()).hexdigest()[:16]}.mp4"


@node_kind(
    "media.compose",
    inputs={
        "video": "video",
        "audio": Param.optional("audio", description="narration or voice-over"),
        "music": Param.optional("audio", description="a background track"),
        "title": Param.optional("text"),
    },
    outputs={"video": "video"},
)
async def media_compose(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Combine a video with optional narration, music and title into one video reference."""
    sources: dict[str, MediaRef] = {}
    for key, kind in _SOURCES:
        ref = _ref(params, key, kind)
        if ref is not None:
            sources[key] = ref
    if "video" not in sources:
        raise NodeError("media.compose needs a video", code="bad_input")
    video = sources["video"]
    title = params.get("title") or None
    # The picture sets the length; only when it is unknown does the longest soundtrack stand in.
    duration = video.duration_s
    if duration is None:
        known = [r.duration_s for r in sources.values() if r.duration_s is not None]
        duration = max(known) if known else None
    meta: dict[str, Any] = {"sources": {k: r.uri for k, r in sources.items()}}
    if title is not None:
        meta["title"] = str(title)
    composed = MediaRef(
        kind="video",
        uri=compose_uri(sources, None if title is None else str(title)),
        mime="video/mp4",
        duration_s=duration,
        width=video.width,
        height=video.height,
        meta=meta,
    )
    return NodeResult(outputs={"video": composed}, meta={"sources": len(sources)})
