"""The value types that flow along a workflow's edges, and media references.

A type is written as a string in a definition: ``text``, ``number``, ``integer``, ``boolean``,
``json``, ``image``, ``video``, ``audio``, or ``list[T]`` of any of them. Media values are
references (a URI plus metadata), never bytes held in memory, so a run's state stays small
however large the videos it produces.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "MEDIA_KINDS",
    "SCALAR_TYPES",
    "MediaRef",
    "ValueType",
    "assignable",
    "check_value",
    "parse_type",
]

MEDIA_KINDS: Final = frozenset({"image", "video", "audio"})
SCALAR_TYPES: Final = frozenset({"text", "number", "integer", "boolean", "json"}) | MEDIA_KINDS

_LIST_RE: Final = re.compile(r"^list\s*\[\s*(.+?)\s*\]$")


@dataclass(frozen=True, slots=True)
class ValueType:
    """A scalar type name, or a list whose elements have ``item``'s type."""

    name: str
    item: ValueType | None = None

    def __str__(self) -> str:
        return f"list[{self.item}]" if self.item is not None else self.name

    @property
    def is_list(self) -> bool:
        return self.item is not None

    @property
    def is_media(self) -> bool:
        return self.name in MEDIA_KINDS

    @property
    def interpolatable(self) -> bool:
        """Whether a value of this type may be spliced into a string template."""
        return self.name in {"text", "number", "integer", "boolean", "json"}


def parse_type(spec: str) -> ValueType:
    """Parse ``"list[image]"`` and friends; raise ``ValueError`` naming what is accepted."""
    text = spec.strip()
    match = _LIST_RE.match(text)
    if match:
        return ValueType("list", parse_type(match.group(1)))
    if text in SCALAR_TYPES:
        return ValueType(text)
    accepted = ", ".join(sorted(SCALAR_TYPES))
    raise ValueError(f"unknown type {spec!r}; use one of {accepted}, or list[T] of them")


def assignable(source: ValueType, target: ValueType) -> bool:
    """Whether a value of type ``source`` may feed an input declared ``target``.

    ``json`` is the escape hatch in both directions: anything can be passed as json, and a json
    value (an HTTP body, say) may feed a typed input, checked against that type when it runs.
    ``integer`` widens to ``number``; nothing else converts implicitly.
    """
    if target.name == "json" or source.name == "json":
        return True
    if source.item is not None or target.item is not None:
        if source.item is None or target.item is None:
            return False
        return assignable(source.item, target.item)
    if source.name == target.name:
        return True
    return source.name == "integer" and target.name == "number"


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A reference to a media object stored elsewhere (object store, CDN, provider URL)."""

    kind: Literal["image", "video", "audio"]
    uri: str
    mime: str = ""
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "uri": self.uri}
        if self.mime:
            data["mime"] = self.mime
        for key in ("duration_s", "width", "height"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.meta:
            data["meta"] = self.meta
        return data

    @classmethod
    def from_json(cls, data: Any, kind: str) -> MediaRef:
        """Accept a bare URI string or the mapping produced by :meth:`to_json`."""
        if isinstance(data, MediaRef):
            return data
        if isinstance(data, str):
            if "://" not in data:
                raise ValueError(f"expected a {kind} URI such as s3://bucket/key, got {data!r}")
            return cls(kind=kind, uri=data)  # type: ignore[arg-type]
        if isinstance(data, dict) and isinstance(data.get("uri"), str):
            return cls(
                kind=kind,  # type: ignore[arg-type]
                uri=data["uri"],
                mime=str(data.get("mime", "")),
                duration_s=data.get("duration_s"),
                width=data.get("width"),
                height=data.get("height"),
                meta=dict(data.get("meta") or {}),
            )
        raise ValueError(f"expected a {kind} reference (a URI or {{uri: ...}}), got {data!r}")


def check_value(value: Any, vtype: ValueType) -> Any:
    """Return ``value`` coerced to ``vtype`` (only lossless coercions), or raise ``ValueError``."""
    if vtype.item is not None:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected {vtype}, got {type(value).__name__}")
        return [check_value(v, vtype.item) for v in value]
    name = vtype.name
    if name == "json":
        return value
    if name == "text":
        if isinstance(value, str):
            return value
    elif name == "boolean":
        if isinstance(value, bool):
            return value
    elif name == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif name == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):  # NaN and infinities poison costs and JSON alike
                raise ValueError(f"expected a finite number, got {value!r}")
            return value
    elif name in MEDIA_KINDS:
        if isinstance(value, MediaRef):
            if value.kind != name:
                raise ValueError(f"expected {name}, got a {value.kind} reference")
            return value
        return MediaRef.from_json(value, name)
    raise ValueError(f"expected {vtype}, got {type(value).__name__} {value!r:.60}")
