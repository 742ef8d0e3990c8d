"""A checked, compiled workflow: what the executor runs and the control plane stores.

Everything that can be decided before a run is decided here once (parameter resolvers, topological
order, consumers of each node), so a run does dictionary look-ups, not parsing.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NewType

from engine.criteria import Criterion, compile_criteria
from engine.errors import Problem, RunError
from engine.node_kinds import KindFn, NodeKind
from engine.ranges import Range
from engine.refs import Resolver, simple_ref
from engine.spec import CacheSpec, InputSpec, NodeSpec, RetrySpec, WorkflowSpec
from engine.types import ValueType, check_value

__all__ = [
    "CompiledNode",
    "Digest",
    "InputBindingError",
    "MapPlan",
    "NodeId",
    "Workflow",
    "parse_input_text",
    "suggest",
]

NodeId = NewType("NodeId", str)
_DEFAULT_RETRY = RetrySpec()
Digest = NewType("Digest", str)


def suggest(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean X?)`` when a close candidate exists, else an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


@dataclass(slots=True, eq=False)
class MapPlan:
    """How ``map`` runs its inner kind once per element of ``items``."""

    kind: NodeKind
    static: dict[str, Any]
    resolvers: tuple[tuple[str, Resolver], ...]
    output: str
    concurrency: int
    # Each element is a step of its own: the inner node's retry and timeout, else the map's.
    policy: RetrySpec | None = None
    timeout_s: float | None = None


@dataclass(slots=True, eq=False)
class CompiledNode:
    id: NodeId
    kind: NodeKind
    spec: NodeSpec
    static: dict[str, Any]
    resolvers: tuple[tuple[str, Resolver], ...]
    # Parameters fed from json values: their declared type is checked when the value arrives.
    runtime_checks: tuple[tuple[str, ValueType], ...]
    deps: frozenset[NodeId]
    # Dependencies read only by optional parameters: if one is skipped, the parameter is left
    # out instead of skipping this node (a music bed that failed should not cancel the cut).
    optional_deps: frozenset[NodeId] = frozenset()
    when: Resolver | None = None
    when_negated: bool = False
    # Why the node is skipped when ``when`` is false, read from the scope (a switch's branch
    # names the case chosen); ``None``: the condition as written.
    when_reason: Resolver | None = None
    map_plan: MapPlan | None = None
    items: Resolver | None = None
    # Parameters fed by references that must lie in a range: checked before the kind is called.
    range_checks: tuple[tuple[str, Range], ...] = ()
    consumers: tuple[NodeId, ...] = ()
    consumer_pairs: tuple[tuple[NodeId, CompiledNode], ...] = ()
    # Decided once here so a run reads attributes instead of walking the spec per step.
    policy: RetrySpec | None = field(init=False)
    timeout_s: float | None = field(init=False)
    cache: CacheSpec | None = field(init=False)
    fallback_models: tuple[str, ...] = field(init=False)
    output_names: tuple[str, ...] = field(init=False)
    # The output keys a kind's dict may carry as-is (all json); None when some need checking.
    unchecked_keys: frozenset[str] | None = field(init=False)
    typed_outputs: tuple[tuple[str, ValueType], ...] = field(init=False)  # all but json
    # Nothing but "resolve parameters, call the kind once, check outputs": the executor's
    # fast path (no condition, fan-out, retry policy or timeout to honour).
    plain: bool = field(init=False)
    fn: KindFn = field(init=False)

    # Parameters that are exactly `${source.field}`: (param, source, field).
    direct: tuple[tuple[str, str, str], ...] = field(init=False)
    direct_only: bool = field(init=False)  # no parameter needs more than a look-up

    def __post_init__(self) -> None:
        direct = []
        rest = []
        for name, resolve in self.resolvers:
            ref = simple_ref(self.spec.with_.get(name)) if self.map_plan is None else None
            if ref is None:
                rest.append((name, resolve))
            else:
                direct.append((name, *ref))
        self.direct = tuple(direct)
        self.resolvers = tuple(rest)
        self.direct_only = not (
            self.resolvers
            or self.runtime_checks
            or self.optional_deps
            or self.map_plan
            or self.range_checks
        )
        self.fn = self.kind.fn
        self.policy = self.spec.retry or (_DEFAULT_RETRY if self.kind.retry_by_default else None)
        self.timeout_s = self.spec.timeout_s
        self.cache = self.spec.cache_spec
        self.fallback_models = self.spec.fallback_models
        self.output_names = self.kind.output_names
        self.typed_outputs = self.kind.typed_outputs
        self.unchecked_keys = self.kind.unchecked_keys
        self.plain = (
            self.when is None
            and self.map_plan is None
            and self.policy is None
            and self.timeout_s is None
            and not self.fallback_models
        )


class InputBindingError(RunError):
    """Run inputs that do not fit the declared inputs; carries one problem per input."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.location}: {p.message}" for p in problems))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def parse_input_text(text: str, vtype: ValueType) -> Any:
    """Read a command-line value (``--input seconds=8``) as the declared type."""
    if vtype.name == "text":
        return text
    if vtype.name in {"image", "video", "audio"}:
        return text
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        if vtype.name == "json":
            return text
        raise ValueError(f"{text!r} is not a valid {vtype}") from None


@dataclass(frozen=True, eq=False)
class Workflow:
    spec: WorkflowSpec
    nodes: Mapping[NodeId, CompiledNode]
    order: tuple[NodeId, ...]
    outputs: tuple[tuple[str, Resolver | None, Any], ...]
    output_types: Mapping[str, ValueType]
    input_types: Mapping[str, tuple[ValueType, InputSpec]]
    output_deps: frozenset[NodeId]
    warnings: tuple[Problem, ...] = field(default=())
    name: str = field(init=False)
    version: str | None = field(init=False)
    root_nodes: tuple[CompiledNode, ...] = field(init=False)
    step_kinds: tuple[tuple[NodeId, str], ...] = field(init=False)  # for a run's trace
    waiting: dict[str, int] = field(init=False)  # node → dependencies left, at the start
    may_prune: bool = field(init=False)  # some node skips on failure: track who runs what

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.spec.name)
        object.__setattr__(self, "version", self.spec.version)
        roots = tuple(self.nodes[n] for n in self.order if not self.nodes[n].deps)
        object.__setattr__(self, "root_nodes", roots)
        object.__setattr__(
            self, "step_kinds", tuple((n, c.kind.name) for n, c in self.nodes.items())
        )
        object.__setattr__(self, "waiting", {n: len(c.deps) for n, c in self.nodes.items()})
        may_prune = any(c.spec.on_failure == "skip" for c in self.nodes.values())
        object.__setattr__(self, "may_prune", may_prune)

    @functools.cached_property
    def criteria(self) -> tuple[Criterion, ...]:
        """The ``success`` assertions, compiled when a run first needs them."""
        return compile_criteria(self.spec.success)

    @functools.cached_property
    def digest(self) -> Digest:
        """The content digest, taken when first asked for: checking a graph does not need it."""
        return Digest(self.spec.digest())

    def bind_inputs(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check run inputs against the declared ones, apply defaults; every problem at once."""
        if raw.keys() == self.input_types.keys():  # the common case: exactly what is declared
            fast: dict[str, Any] = {}
            try:
                for name, (vtype, _) in self.input_types.items():
                    value = raw[name]
                    if value is None:  # a default may apply: take the full path
                        break
                    fast[name] = check_value(value, vtype)
                else:
                    return fast
            except ValueError:
                pass  # the full check below reports every problem
        problems: list[Problem] = []
        bound: dict[str, Any] = {}
        for name in raw:
            if name not in self.input_types:
                hint = suggest(name, list(self.input_types))
                problems.append(
                    Problem("unknown_input", f"inputs.{name}", f"no input named {name!r}{hint}")
                )
        for name, (vtype, spec) in self.input_types.items():
            if name not in raw or raw[name] is None:
                if spec.default is not None:
                    bound[name] = check_value(spec.default, vtype)
                elif spec.is_required:
                    problems.append(
                        Problem(
                            "missing_input",
                            f"inputs.{name}",
                            f"input {name!r} ({vtype}) is required",
                        )
                    )
                else:
                    bound[name] = None
                continue
            try:
                bound[name] = check_value(raw[name], vtype)
            except ValueError as exc:
                problems.append(Problem("bad_input", f"inputs.{name}", str(exc)))
        if problems:
            raise InputBindingError(problems)
        return bound
