"""References (``${node.output}``, ``${inputs.name}``) and string templates that contain them.

A parameter is a literal, a whole reference (``"${enhance.text}"``, which passes the value with
its type, media included), or a template (``"A film of ${inputs.prompt}"``, which renders text).
Nothing here evaluates code: a reference is a path, a template is text with holes.
Write ``$${`` for a literal ``${``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, NamedTuple

from engine.limits import LimitExceeded, text_size
from engine.types import MediaRef

__all__ = [
    "INPUTS",
    "ITEM",
    "Ref",
    "Resolver",
    "Scope",
    "compile_value",
    "iter_refs",
    "parse_ref",
    "render_text",
    "simple_ref",
]

INPUTS: Final = "inputs"
ITEM: Final = "item"

# Values produced so far in a run: {"inputs": {...}, "<node>": {"<output>": value}}.
Scope = Mapping[str, Mapping[str, Any]]
Resolver = Callable[[Scope], Any]

_REF_RE: Final = re.compile(r"(?<!\$)\$\{\s*([^}]*?)\s*\}")
_PART_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_SIMPLE_RE: Final = re.compile(
    r"^\$\{\s*([A-Za-z_][A-Za-z0-9_\-]*)\.([A-Za-z_][A-Za-z0-9_\-]*)\s*\}\Z"
)
_PATH_RE: Final = re.compile(r"^[A-Za-z0-9_\-]+$")


class Ref(NamedTuple):
    """``source.field.path...``: source is ``inputs``, ``item`` or a node id.

    For ``item`` the field is ``None`` and every part after it is a path into the element.
    (A named tuple: large definitions create thousands, and a frozen dataclass is slow to make.)
    """

    source: str
    field: str | None
    path: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return "${" + self.text + "}"


@functools.lru_cache(maxsize=4096)
def parse_ref(text: str) -> Ref:
    """Parse the inside of ``${...}``; raise ``ValueError`` with what a reference looks like."""
    parts = text.split(".")
    # Names start with a letter; a path into json may also index a list (`items.0`).
    names = 1 if parts[0] == ITEM else 2
    if not text or any(
        not (_PART_RE if i < names else _PATH_RE).match(p) for i, p in enumerate(parts)
    ):
        raise ValueError(
            f"malformed reference ${{{text}}}; write ${{node.output}} or ${{inputs.name}}"
        )
    if parts[0] == ITEM:  # the current element inside a map: ${item} or ${item.field}
        return Ref(ITEM, None, tuple(parts[1:]), text)
    if len(parts) < 2:
        raise ValueError(f"reference ${{{text}}} names no output; write ${{{text}.<output>}}")
    return Ref(parts[0], parts[1], tuple(parts[2:]), text)


@functools.lru_cache(maxsize=4096)
def _split(template: str) -> tuple[str | Ref, ...]:
    """Literal text and references of a template, in order. Cached: a definition repeats the
    same references often, and define-time checks of large graphs read each several times."""
    simple = _SIMPLE_RE.match(template)
    if simple is not None:  # by far the most common parameter: exactly `${node.output}`
        source, field = simple.group(1), simple.group(2)
        if source != ITEM:
            return (Ref(source, field, (), f"{source}.{field}"),)
    parts: list[str | Ref] = []
    pos = 0
    for match in _REF_RE.finditer(template):
        if match.start() > pos:
            parts.append(template[pos : match.start()])
        parts.append(parse_ref(match.group(1)))
        pos = match.end()
    if pos < len(template):
        parts.append(template[pos:])
    return tuple(p.replace("$${", "${") if isinstance(p, str) else p for p in parts)


def iter_refs(value: Any, location: str) -> Iterator[tuple[Ref | ValueError, str, bool]]:
    """Yield ``(ref, location, whole)`` for every reference in a (nested) parameter value.

    ``whole`` is true when the string is exactly one reference, so the value keeps its type.
    A malformed reference is yielded as the ``ValueError`` that describes it.
    """
    if isinstance(value, str):
        if "${" not in value:
            return
        try:
            parts = _split(value)
        except ValueError:  # report each reference, the malformed ones as errors
            matches = list(_REF_RE.finditer(value))
            whole = len(matches) == 1 and matches[0].group(0) == value
            for match in matches:
                try:
                    yield parse_ref(match.group(1)), location, whole
                except ValueError as exc:
                    yield exc, location, whole
            return
        whole = len(parts) == 1
        for part in parts:
            if isinstance(part, Ref):
                yield part, location, whole
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_refs(item, f"{location}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_refs(item, f"{location}[{index}]")


def render_text(value: Any) -> str:
    """How a referenced value reads inside a template."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, MediaRef):
        return value.uri
    return json.dumps(value, sort_keys=True, default=str)


def simple_ref(value: Any) -> tuple[str, str] | None:
    """``(source, field)`` when ``value`` is exactly ``${source.field}``: the executor reads
    those with two look-ups instead of calling a resolver."""
    if not isinstance(value, str) or not value.startswith("${"):
        return None
    parts = _split(value)
    if len(parts) != 1 or not isinstance(parts[0], Ref):
        return None
    ref = parts[0]
    if ref.field is None or ref.path:
        return None
    return ref.source, ref.field


def _lookup(ref: Ref) -> Resolver:
    source, field, path = ref.source, ref.field, ref.path
    if field is None and not path:  # ${item}
        return lambda scope: scope[source][""]
    if field is not None and not path:
        name = field
        return lambda scope: scope[source][name]

    def walk(scope: Scope) -> Any:
        value: Any = scope[source][field if field is not None else ""]
        for key in path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                raise KeyError(f"{ref} has no field {key!r} in this run")
        return value

    return walk


def compile_value(value: Any, *, max_text: int | None = None) -> Resolver | None:
    """Turn a parameter into a resolver over the run's scope; ``None`` when it holds no reference.

    Compiling once when the workflow is defined keeps the per-node cost of a run to a few
    dictionary look-ups. ``max_text`` bounds the UTF-8 size of the text a template renders
    (``LimitExceeded`` when a run's values would make it larger): a parameter that repeats one
    reference a thousand times must not turn a long input into a gigabyte.
    """
    if isinstance(value, str):
        if "${" not in value:
            return None
        parts = _split(value)
        if len(parts) == 1 and isinstance(parts[0], Ref):
            return _lookup(parts[0])
        pieces: list[Callable[[Scope], str]] = []
        for part in parts:
            if isinstance(part, Ref):
                get = _lookup(part)
                pieces.append(lambda scope, get=get: render_text(get(scope)))  # type: ignore[misc]
            else:
                pieces.append(lambda scope, text=part: text)  # type: ignore[misc]
        if not any(isinstance(p, Ref) for p in parts):
            literal = "".join(p for p in parts if isinstance(p, str))
            return lambda scope: literal
        if max_text is None:
            return lambda scope: "".join(piece(scope) for piece in pieces)
        return _bounded(pieces, max_text)
    if isinstance(value, dict):
        compiled = {k: compile_value(v, max_text=max_text) for k, v in value.items()}
        if all(c is None for c in compiled.values()):
            return None
        return lambda scope: {
            k: (c(scope) if c is not None else value[k]) for k, c in compiled.items()
        }
    if isinstance(value, list):
        items = [compile_value(v, max_text=max_text) for v in value]
        if all(c is None for c in items):
            return None
        return lambda scope: [c(scope) if c is not None else value[i] for i, c in enumerate(items)]
    return None


def _bounded(pieces: list[Callable[[Scope], str]], max_text: int) -> Resolver:
    """A template's renderer that stops as soon as its text would pass ``max_text`` bytes."""

    def render(scope: Scope) -> str:
        out: list[str] = []
        size = 0
        for piece in pieces:
            text = piece(scope)
            size += text_size(text)
            if size > max_text:
                raise LimitExceeded(
                    f"a template would render more than {max_text:,} bytes (the limit; "
                    "ROLLGRAPH_MAX_TEMPLATE_BYTES on a server): it repeats or embeds values "
                    "too large to put in one text"
                )
            out.append(text)
        return "".join(out)

    return render
