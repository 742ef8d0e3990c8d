"""What the store can hold, checked where a request comes in: text, JSON values, integers.

Why at the edge, and the same on every store: PostgreSQL refuses a NUL character in text
(psycopg raises ``DataError``), and a lone surrogate (``"\\ud800"``, which JSON can spell but
UTF-8 cannot encode) is refused by both stores and by the JSON response itself. Caught there,
either is a 500 after part of the work was done (an async run was already answered 202);
SQLite would even store the NUL, so a request that works in development would fail in
production. Checked here, it is a 422 that names the field, before anything is read or written.

Schemas use the ``Annotated`` types (``StoreText``, ``StoreJsonObject``) and query or path
parameters add ``Storable`` to theirs, so a route cannot forget the check by building its own.

JSON values (run inputs) are checked everywhere inside, keys included, and bounded:
``MAX_JSON_DEPTH`` levels, because a 900-deep value parses but then exhausts the recursion
of every encoder and walker after it; finite numbers only, because Python's JSON reader takes
``NaN`` and ``Infinity``, which PostgreSQL's ``json`` type and JSON responses refuse.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator

__all__ = [
    "INT32_MAX",
    "MAX_JSON_DEPTH",
    "Storable",
    "StoreJsonObject",
    "StoreText",
    "json_problem",
    "storable_json",
    "storable_text",
    "text_problem",
    "visible",
]

# Deep enough for any document a workflow input plausibly is (ASP.NET's default), far below
# the ~1,000 frames at which Python's recursion gives out.
MAX_JSON_DEPTH = 64
# The largest value of an ``Integer`` column (PostgreSQL ``integer``): bound integer
# parameters to it, or a larger one is a database error instead of a 422.
INT32_MAX = 2**31 - 1

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

T = TypeVar("T")


def visible(text: str) -> str:
    """``text`` with NULs and lone surrogates escaped (``\\x00``, ``\\ud800``), so that a
    message quoting it can itself be stored and sent."""
    return _UNSTORABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or ``None`` when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return (
            f"contains a NUL character (U+0000) at offset {found.start()}, which cannot be stored"
        )
    return (
        f"contains a lone surrogate (U+{ord(found.group()):04X}) at offset {found.start()}, "
        "which is not Unicode text"
    )


def storable_text(value: T) -> T:
    """A pydantic after-validator: ``value`` unchanged when it is not text or can be stored."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why the JSON ``value`` cannot be stored, naming where (``items[2].name: ...``), or
    ``None``. Walked with a stack, not recursion: the depth limit is what it enforces."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict | list) and depth > max_depth:
            where = path if len(path) <= 60 else path[:57] + "..."
            return f"{where or 'the value'}: nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            for key, child in item.items():
                name = visible(str(key))
                where = f"{path}.{name}" if path else name
                problem = text_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    return f"{where}: the key {problem}"
                stack.append((child, where, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return f"{path or 'the value'}: {problem}"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{path or 'the value'}: {item!r} is not a finite number"
    return None


def storable_json(value: T) -> T:
    """A pydantic after-validator for JSON values (see ``json_problem``)."""
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Add to a query or path parameter's Annotated: ``Annotated[str | None, Query(...), Storable]``.
Storable = AfterValidator(storable_text)
StoreText = Annotated[str, Storable]
StoreJsonObject = Annotated[dict[str, Any], AfterValidator(storable_json)]
