"""What a condition's values mean when compared: which types can meet, and how a run compares.

The define-time rules (``family``, ``comparable``) and the run-time ones (``equal``,
``ordering``, ``contains``) live together so they cannot drift apart: a comparison that passes
the type check behaves as written when it runs, and a json value that turns out to be of
another type is a ``ConditionError`` naming both values, never a Python ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from engine.types import ValueType

__all__ = [
    "BOOLEAN",
    "ConditionError",
    "comparable",
    "comparable_families",
    "contains",
    "equal",
    "family",
    "literal_type",
    "ordering",
]

BOOLEAN: Final = ValueType("boolean")
_NULL: Final = ValueType("null")  # the type of the literal null; never declared by a user
Getter = Callable[[Any], Any]


class ConditionError(ValueError):
    """A condition that cannot be parsed, or a run-time comparison of mismatched json values."""


def literal_type(value: Any) -> ValueType:
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return ValueType("integer")
    if isinstance(value, float):
        return ValueType("number")
    return ValueType("text")


def family(vtype: ValueType) -> str:
    if vtype.item is not None:
        return "list"
    if vtype.name in {"integer", "number"}:
        return "number"
    if vtype.name in {"image", "video", "audio"}:
        return "media"
    return vtype.name


# A compiled operand: its type (None when unknown after a reported problem), how a run reads


def comparable_families(a: str, b: str) -> bool:
    if "json" in (a, b) or "null" in (a, b):
        return True
    return a == b and a != "media"


def comparable(a: ValueType, b: ValueType) -> bool:
    """Whether values of these types can ever be equal (``==`` is not always false)."""
    return comparable_families(family(a), family(b))


def equal(a: Any, b: Any) -> bool:
    # Python says True == 1; a condition does not: a boolean equals only a boolean.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def ordering(op: str, lget: Getter, rget: Getter, name: str) -> Getter:
    def order(scope: Any) -> bool:
        a, b = lget(scope), rget(scope)
        kind = _kind_of(a)
        if kind not in {"number", "text"} or kind != _kind_of(b):
            raise ConditionError(
                f"{name}: cannot order {_kind_of(a)} {a!r:.40} and {_kind_of(b)} {b!r:.40}"
            )
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)

    return order


def contains(item: Any, container: Any, name: str) -> bool:
    if isinstance(container, list):
        return any(equal(item, element) for element in container)
    if isinstance(container, str) and isinstance(item, str):
        return item in container
    if isinstance(container, dict) and isinstance(item, str):
        return item in container
    raise ConditionError(f"{name}: cannot look for {_kind_of(item)} in {_kind_of(container)}")
