"""``template``: fill ``{name}`` placeholders from a mapping, with no code execution.

``str.format`` is not used on purpose: it follows attribute and index access
(``{x.__class__.__mro__}``), which turns a user-editable template into a way to walk Python
objects. Here a placeholder is a bare name and nothing else. ``{{`` and ``}}`` stand for literal
braces, as in ``str.format``. A placeholder that tries attribute or index access is refused
with an error rather than left as literal text, because silently printing ``{user.name}`` would
hide the mistake until someone reads the output. Any other brace (JSON in the text, ``{}``,
``{ spaced }``) is literal.

``${node.output}`` references are interpolated by the engine before the kind runs, so this
only ever sees their values.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final

from engine.context import NodeContext
from engine.errors import NodeError
from engine.limits import LimitExceeded, text_size
from engine.node_kinds import NodeResult, Param, node_kind
from engine.refs import render_text

__all__ = ["render_template", "template", "template_problems"]

# One alternation scanned left to right, so "{{name}}" is an escaped brace pair around plain
# text and never a placeholder, exactly as str.format reads it.
_TOKEN_RE: Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)((?:\.|\[)[^{}]*)?\}")


def template_problems(text: str, names: Collection[str] | None) -> list[tuple[str, str]]:
    """What is wrong with ``text`` as a template, as ``(code, message)``: placeholders with
    attribute or index access, then (when the value ``names`` are known) every missing one.
    Run before each render and, for literal templates, when the workflow is defined."""
    problems: list[tuple[str, str]] = []
    missing: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        name, access = match.group(1), match.group(2)
        if name is None:
            continue
        if access:
            problems.append(
                (
                    "template_unsupported",
                    f"template placeholder {match.group(0)!r} uses attribute or index access, "
                    f"which templates do not support; pass the value itself as {{{name}}} "
                    "(write {{ and }} for literal braces)",
                )
            )
        elif names is not None and name not in names and name not in missing:
            missing.append(name)
    if missing:
        given = ", ".join(sorted(names or ())) or "none"
        placeholders = ", ".join("{" + m + "}" for m in missing)
        problems.append(
            (
                "template_missing_value",
                f"template has no value for {placeholders}; values given: {given}",
            )
        )
    return problems


def render_template(text: str, values: Mapping[str, Any], max_bytes: int | None = None) -> str:
    """Replace each ``{name}`` in ``text`` with ``values[name]`` rendered as text.

    Raise ``NodeError`` (not retryable) naming every missing placeholder at once, so a user
    fixes them in one edit rather than one run per name. With ``max_bytes``, raise
    ``LimitExceeded`` as soon as the text would be larger than that.
    """
    problems = template_problems(text, values)
    if problems:
        code, message = problems[0]
        raise NodeError(message, code=code)

    # Counted as the text is built (what precedes each placeholder, then its value), so a
    # short text repeating a long value stops at the limit instead of being built whole.
    size = 0
    pos = 0
    rendered: dict[str, str] = {}  # each value rendered once, however often it repeats

    def replace(match: re.Match[str]) -> str:
        nonlocal size, pos
        token = match.group(0)
        if token == "{{":
            out = "{"
        elif token == "}}":
            out = "}"
        else:
            name = match.group(1)
            if name not in rendered:
                rendered[name] = render_text(values[name])
            out = rendered[name]
        if max_bytes is not None:
            size += text_size(text[pos : match.start()]) + text_size(out)
            pos = match.end()
            if size > max_bytes:
                raise _too_large(max_bytes)
        return out

    filled = _TOKEN_RE.sub(replace, text)
    if max_bytes is not None and size + text_size(text[pos:]) > max_bytes:
        raise _too_large(max_bytes)
    return filled


def _too_large(max_bytes: int) -> LimitExceeded:
    return LimitExceeded(
        f"template would render more than {max_bytes:,} bytes (the limit; "
        "ROLLGRAPH_MAX_TEMPLATE_BYTES on a server)"
    )


@node_kind(
    "template",
    inputs={
        "text": Param.of("text"),
        "values": Param.optional("json", description="a mapping of placeholder names to values"),
    },
    outputs={"text": "text"},
)
async def template(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    """Fill ``{name}`` placeholders in a text from a mapping of values."""
    values = params.get("values")
    if values is None:
        values = {}
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise NodeError(
            f"template values must be a mapping of names to values, got {type(values).__name__}",
            code="bad_input",
        )
    text = render_template(str(params["text"]), values, ctx.runtime.limits.max_template_bytes)
    return NodeResult(outputs={"text": text})
