"""Node kinds: what a node may ``use``, with typed input and output schemas.

A kind is a Python coroutine registered under a name. Definitions only name kinds and pass them
data; nothing in a definition is ever evaluated as code. Users add kinds with the ``@node_kind``
decorator or through the ``rollgraph.nodes`` entry point group (an entry point may resolve to a
``NodeKind``, an iterable of them, or a module whose import registers them).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias

from engine.ranges import Range
from engine.types import ValueType, parse_type

if TYPE_CHECKING:
    from engine.context import NodeContext

__all__ = [
    "KindFn",
    "NodeKind",
    "NodeKinds",
    "NodeResult",
    "Param",
    "default_kinds",
    "node_kind",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "rollgraph.nodes"


@dataclass(frozen=True, slots=True)
class Param:
    """One input of a kind. A parameter without a default is required; a numeric one may carry
    the ``range`` its values must lie in (``engine.ranges``)."""

    type: ValueType
    required: bool = True
    default: Any = None
    description: str = ""
    range: Range | None = None

    @classmethod
    def of(cls, spec: str | ValueType | Param) -> Param:
        if isinstance(spec, Param):
            return spec
        return cls(spec if isinstance(spec, ValueType) else parse_type(spec))

    @classmethod
    def optional(
        cls, spec: str, default: Any = None, description: str = "", range: Range | None = None
    ) -> Param:
        return cls(
            parse_type(spec), required=False, default=default, description=description, range=range
        )


@dataclass(slots=True)
class NodeResult:
    """What a kind returns when it has more to say than its outputs: cost, usage, metadata.

    ``usage`` holds counts such as ``tokens_in``, ``tokens_out`` or ``media_seconds``;
    ``meta`` holds facts for the trace (the simulator's quality figure, a provider request id).
    """

    outputs: dict[str, Any]
    cost_usd: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


KindFn: TypeAlias = Callable[
    ["NodeContext", dict[str, Any]], Awaitable[NodeResult | dict[str, Any]]
]


@dataclass(frozen=True, slots=True)
class NodeKind:
    """A named, typed step implementation.

    ``provider_task`` marks a model kind: its ``model`` parameter reads ``provider/model`` and
    the provider must support that task. ``retry_by_default`` lets a kind whose calls are
    naturally flaky (network, models) retry retryable errors without the user spelling out a
    policy; model kinds default to it.
    """

    name: str
    inputs: Mapping[str, Param]
    outputs: Mapping[str, ValueType]
    fn: KindFn
    description: str = ""
    provider_task: str | None = None
    retry_by_default: bool = False
    # Derived once per kind, read by every compiled node that uses it.
    output_names: tuple[str, ...] = field(init=False)
    typed_outputs: tuple[tuple[str, ValueType], ...] = field(init=False)  # all but json ones
    # The output keys a result may carry unchecked (all json); None when some need checking.
    unchecked_keys: frozenset[str] | None = field(init=False)
    ranged: tuple[tuple[str, Range], ...] = field(init=False)  # the parameters with a range

    def __post_init__(self) -> None:
        typed = tuple((k, t) for k, t in self.outputs.items() if t.name != "json")
        ranged = tuple((k, p.range) for k, p in self.inputs.items() if p.range is not None)
        object.__setattr__(self, "ranged", ranged)
        object.__setattr__(self, "output_names", tuple(self.outputs))
        object.__setattr__(self, "typed_outputs", typed)
        object.__setattr__(self, "unchecked_keys", None if typed else frozenset(self.outputs))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputs": {
                k: {
                    "type": str(p.type),
                    "required": p.required,
                    "default": p.default,
                    **({"range": p.range.describe(k)} if p.range is not None else {}),
                }
                for k, p in self.inputs.items()
            },
            "outputs": {k: str(t) for k, t in self.outputs.items()},
            "provider_task": self.provider_task,
        }


class NodeKinds:
    """Name → kind. Built-ins register on import; entry points load on first look-up."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._kinds: dict[str, NodeKind] = {}
        self._entry_points_loaded = not load_entry_points

    def register(self, kind: NodeKind, *, replace: bool = False) -> NodeKind:
        if kind.name in self._kinds and not replace and self._kinds[kind.name] is not kind:
            raise ValueError(f"node kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> NodeKind | None:
        self._load_entry_points()
        return self._kinds.get(name)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def copy(self) -> NodeKinds:
        clone = NodeKinds(load_entry_points=False)
        self._load_entry_points()
        clone._kinds = dict(self._kinds)
        return clone

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception:  # a broken plug-in must not take the engine down with it
                log.exception("could not load node kinds from entry point %s", ep.value)
                continue
            self._register_loaded(loaded, ep.name)

    def _register_loaded(self, loaded: Any, origin: str) -> None:
        if isinstance(loaded, ModuleType):
            return  # importing it registered its kinds through @node_kind
        if callable(loaded) and not isinstance(loaded, NodeKind):
            loaded = loaded()
        kinds: Iterable[Any] = [loaded] if isinstance(loaded, NodeKind) else loaded or []
        for kind in kinds:
            if isinstance(kind, NodeKind):
                self.register(kind, replace=True)
            else:
                log.warning("entry point %s gave %r, not a NodeKind", origin, kind)


default_kinds = NodeKinds()


def node_kind(
    name: str,
    *,
    inputs: Mapping[str, str | ValueType | Param],
    outputs: Mapping[str, str | ValueType],
    description: str = "",
    provider_task: str | None = None,
    retry_by_default: bool | None = None,
    kinds: NodeKinds | None = None,
    replace: bool = False,
) -> Callable[[KindFn], NodeKind]:
    """Register a coroutine ``async def fn(ctx, params) -> dict | NodeResult`` as a node kind.

    >>> @node_kind("text.upper", inputs={"text": "text"}, outputs={"text": "text"})
    ... async def upper(ctx, params):
    ...     return {"text": params["text"].upper()}
    """

    def decorate(fn: KindFn) -> NodeKind:
        kind = NodeKind(
            name=name,
            inputs={k: Param.of(v) for k, v in inputs.items()},
            outputs={
                k: v if isinstance(v, ValueType) else parse_type(v) for k, v in outputs.items()
            },
            fn=fn,
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            provider_task=provider_task,
            retry_by_default=provider_task is not None
            if retry_by_default is None
            else retry_by_default,
        )
        (kinds or default_kinds).register(kind, replace=replace)
        return kind

    return decorate
