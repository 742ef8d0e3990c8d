"""Bounds on the work one definition or one run may ask of an engine.

A definition is data a user (or an experiment) writes, and a run's inputs come from whoever
calls the API, so each kind of amplification gets a number and a clear refusal instead of a
process that grows until it is killed:

- ``max_nodes``, ``max_edges``: a graph's size, checked when it is defined (``too_large``).
  Compiling is roughly linear in both, and a definition is compiled by every process that
  runs it; 1,000 nodes is fifty times the largest example and compiles in about 0.35 s.
- ``max_map_items``: elements one ``map`` step may fan out over, checked when the step starts
  (a literal list is checked when defined). Every element is a task and a result: 10,000
  template elements take about 1.3 s and 14 MB of one process, 400,000 took 41 s and 610 MB.
- ``max_template_bytes``: the text a ``template`` node or a ``"... ${ref} ..."`` parameter may
  render. A few kilobytes of placeholders repeating one long value otherwise expand a 60 KB
  request into a 100 MB response.
- ``max_response_bytes``: what an ``http.json`` call may read, what one ``map`` step may
  collect and what a run may return as its outputs (estimated as their JSON encoding).

YAML and JSON nesting in a definition is bounded separately (``engine.sourcemap.MAX_DEPTH``,
64 levels) because it protects the parser itself, before any limit here can apply.

The engine takes a ``Limits`` (``Engine(limits=...)``); the control plane builds one from its
settings. Refusals are ``LimitExceeded``, a non-retryable ``NodeError`` with code ``too_large``:
a run that hits one fails cleanly with a message naming the limit and the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from engine.errors import NodeError

__all__ = ["TOO_LARGE", "LimitExceeded", "Limits", "json_size", "text_size"]

TOO_LARGE: Final = "too_large"
_MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The engine's bounds on work; every one must be positive."""

    max_nodes: int = 1_000
    max_edges: int = 10_000
    max_map_items: int = 10_000
    max_template_bytes: int = _MIB
    max_response_bytes: int = 8 * _MIB

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")


class LimitExceeded(NodeError):
    """A run asked for more than a limit allows; never retried (it would ask again)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=TOO_LARGE)


def text_size(text: str) -> int:
    """``text``'s size in UTF-8 bytes (without encoding ASCII text, the common case)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def json_size(value: Any, stop_above: int | None = None) -> int:
    """An estimate of the size of ``value``'s JSON encoding, in bytes: strings and keys by
    their UTF-8 size plus quotes, other scalars by their text, containers by their brackets and
    separators. Walked with a stack (the value may be deep); stops as soon as the total is
    above ``stop_above``, so measuring a huge value costs no more than the limit it breaks."""
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += text_size(item) + 2
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)  # {} and, per entry, ":" and ","
            for key, child in item.items():
                total += text_size(str(key)) + 2
                stack.append(child)
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        elif item is None or isinstance(item, bool):
            total += 5
        elif isinstance(item, int | float):
            total += len(repr(item))
        else:  # a media reference or another object: measured by how it prints
            total += text_size(str(item))
        if stop_above is not None and total > stop_above:
            return total
    return total
