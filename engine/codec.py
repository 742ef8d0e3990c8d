"""Values to JSON and back: media references survive the trip as ``{"$media": {...}}``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from engine.types import MediaRef

__all__ = ["dumps", "from_jsonable", "loads", "step_key", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    if isinstance(value, MediaRef):
        return {"$media": value.to_json()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        media = value.get("$media")
        if media is not None and len(value) == 1 and isinstance(media, dict):
            return MediaRef.from_json(media, str(media.get("kind", "")))
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Canonical JSON text: equal values give equal text (the basis of cache keys)."""
    return json.dumps(
        to_jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def loads(text: str) -> Any:
    return from_jsonable(json.loads(text))


def step_key(digest: str, node: str, params: dict[str, Any]) -> str:
    """The step cache key: the definition's digest, the node, and its resolved inputs."""
    h = hashlib.sha256()
    h.update(digest.encode())
    h.update(b"\x00")
    h.update(node.encode())
    h.update(b"\x00")
    h.update(dumps(params).encode())
    return h.hexdigest()
