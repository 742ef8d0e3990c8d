"""Compiling a ``map`` node: its items and its inner node, checked, into a ``MapPlan``.

``map`` is the one kind whose parameters are not plain values: ``items`` is a list to fan out
over, ``node: {uses, with}`` is a node written inside it whose parameters may read each element
as ``${item}``, ``output`` picks the inner output to collect and ``concurrency`` bounds how many
elements run at once. The inner node may carry its own ``retry:`` and ``timeout_s``: each
element is a step of its own (``engine.map_steps``), retried and timed out on its own. The kind's
run-time side is ``engine.kinds.map``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from engine.errors import Problem
from engine.node_kinds import NodeKind
from engine.param_checks import check_literals
from engine.refs import Ref, Resolver, compile_value, iter_refs
from engine.spec import NodeSpec, RetrySpec
from engine.typecheck import JSON, MAP_KIND, RESERVED, Checker
from engine.types import ValueType
from engine.workflow import MapPlan, suggest

__all__ = ["compile_map"]

_PARAMS = frozenset({"items", "node", "output", "concurrency"})
_INNER_FIELDS = ("uses", "with", "retry", "timeout_s")
_DEFAULT_RETRY = RetrySpec()


def compile_map(
    checker: Checker, node: NodeSpec, loc: str, deps: set[str]
) -> tuple[MapPlan | None, Resolver | None]:
    """The plan and the items' resolver of a ``map`` node; adds the nodes it reads to ``deps``.

    The plan is ``None`` when the inner node cannot be compiled (the problem is recorded).
    """
    params = dict(node.with_)
    for name in params:
        if name not in _PARAMS:
            hint = suggest(name, sorted(_PARAMS))
            checker.error(
                "unknown_param", f"{loc}.with.{name}", f"map has no parameter {name!r}{hint}"
            )
    items_value = params.get("items")
    items: Resolver | None = None
    item_type = JSON
    if items_value is None:
        checker.error(
            "missing_param", f"{loc}.with.items", "map needs items (a list to fan out over)"
        )
    else:
        items, item_type = _items(checker, items_value, f"{loc}.with.items", deps)
    concurrency = _concurrency(checker, params.get("concurrency", 4), f"{loc}.with.concurrency")
    inner = _inner_node(checker, params.get("node"), f"{loc}.with.node")
    if inner is None:
        return None, items
    inner_kind, inner_with, inner_spec = inner
    checked = checker.check_params(inner_kind, inner_with, f"{loc}.with.node.with", item_type)
    deps |= checked.deps
    check_literals(checker, inner_kind, inner_with, checked.static, f"{loc}.with.node.with")
    output = params.get("output") or next(iter(inner_kind.outputs), "")
    if output not in inner_kind.outputs:
        hint = suggest(str(output), list(inner_kind.outputs))
        checker.error(
            "unknown_output",
            f"{loc}.with.output",
            f"{inner_kind.name} has no output {output!r}{hint}",
        )
    # An element's policy: the inner node's, else the map's (what applied before elements were
    # steps), else the inner kind's default like any node of that kind.
    policy = inner_spec.get("retry") or node.retry
    if policy is None and inner_kind.retry_by_default:
        policy = _DEFAULT_RETRY
    timeout = inner_spec.get("timeout_s") or node.timeout_s
    plan = MapPlan(
        inner_kind,
        checked.static,
        tuple(checked.resolvers),
        str(output),
        concurrency,
        policy,
        timeout,
    )
    return plan, items


def _items(checker: Checker, value: Any, loc: str, deps: set[str]) -> tuple[Resolver, ValueType]:
    """A resolver of the items and the type of one element (json when it cannot be known)."""
    item_type = JSON
    refs = list(iter_refs(value, loc))
    if len(refs) == 1 and refs[0][2] and isinstance(refs[0][0], Ref):
        ref = refs[0][0]
        if ref.source not in RESERVED:
            deps.add(ref.source)
        vtype = checker.ref_type(ref, loc, None)
        if vtype is not None and vtype.item is None and vtype.name != "json":
            checker.error("type_mismatch", loc, f"map items must be a list; {ref} is {vtype}")
        elif vtype is not None and vtype.item is not None:
            item_type = vtype.item
    elif not isinstance(value, list):
        checker.error("bad_value", loc, "items must be a list or one reference to a list")
    elif len(value) > checker.limits.max_map_items:
        checker.error(
            "too_large",
            loc,
            f"map has {len(value):,} items, more than the limit of "
            f"{checker.limits.max_map_items:,} (ROLLGRAPH_MAX_MAP_ITEMS on a server)",
        )
    resolver = compile_value(value, max_text=checker.limits.max_template_bytes)
    return resolver or (lambda scope: value), item_type


def _concurrency(checker: Checker, value: Any, loc: str) -> int:
    # bool is an int to Python, but `concurrency: true` is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        checker.error("bad_value", loc, "concurrency must be an integer ≥ 1")
        return 1
    return value


def _inner_node(
    checker: Checker, inner: Any, loc: str
) -> tuple[NodeKind, Mapping[str, Any], dict[str, Any]] | None:
    """The inner node's kind, its parameters as written and its checked ``retry`` and
    ``timeout_s`` (absent when not given), or ``None`` when it is unusable."""
    if not isinstance(inner, dict) or not isinstance(inner.get("uses"), str):
        checker.error("missing_param", loc, "map needs node: {uses: KIND, with: {...}}")
        return None
    for name in inner:
        # Silently ignored is how `retry:` once did nothing here. A warning, not an error: a
        # version stored before this check must still compile when it runs.
        if name not in _INNER_FIELDS:
            hint = suggest(str(name), list(_INNER_FIELDS))
            checker.problems.append(
                Problem(
                    "unknown_field",
                    f"{loc}.{name}",
                    f"a map's node has no field {name!r}{hint}; it is ignored "
                    f"(it takes {', '.join(_INNER_FIELDS)})",
                    severity="warning",
                )
            )
    settings = _inner_settings(checker, inner, loc)
    kind = checker.kinds.get(inner["uses"])
    # Each element calls the inner kind's function directly, without the item runner that the
    # executor gives only a map node's own step, so a map cannot be nested.
    if kind is None or kind.name == MAP_KIND:
        hint = suggest(inner["uses"], checker.kinds.names())
        checker.error("unknown_kind", f"{loc}.uses", f"cannot map over {inner['uses']!r}{hint}")
        return None
    return kind, inner.get("with") or {}, settings


def _inner_settings(checker: Checker, inner: dict[str, Any], loc: str) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if inner.get("retry") is not None:
        try:
            settings["retry"] = RetrySpec.model_validate(inner["retry"])
        except pydantic.ValidationError as exc:
            for problem in exc.errors():
                where = ".".join(str(p) for p in problem["loc"])
                checker.error(
                    "bad_value", f"{loc}.retry{'.' + where if where else ''}", problem["msg"]
                )
    timeout = inner.get("timeout_s")
    if timeout is not None:
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < float("inf")
        ):
            checker.error("bad_value", f"{loc}.timeout_s", "timeout_s must be a number > 0")
        else:
            settings["timeout_s"] = float(timeout)
    return settings
