"""A checked, compiled workflow: what the executor runs and what the registry stores.

Everything that can be decided before a run is decided here once (parameter resolvers, topological
order, consumers of each node), so a run does dictionary look-ups, not parsing.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NewType

from engine.errors import Problem, RunError
from engine.refs import Resolver
from engine.registry import NodeKind
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
    map_plan: MapPlan | None = None
    items: Resolver | None = None
    consumers: tuple[NodeId, ...] = ()

    @property
    def retry(self) -> RetrySpec | None:
        return self.spec.retry

    @property
    def cache(self) -> CacheSpec | None:
        return self.spec.cache_spec


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
    digest: Digest
    nodes: Mapping[NodeId, CompiledNode]
    order: tuple[NodeId, ...]
    outputs: tuple[tuple[str, Resolver | None, Any], ...]
    output_types: Mapping[str, ValueType]
    input_types: Mapping[str, tuple[ValueType, InputSpec]]
    output_deps: frozenset[NodeId]
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str | None:
        return self.spec.version

    def bind_inputs(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check run inputs against the declared ones, apply defaults; every problem at once."""
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

    def describe(self) -> dict[str, Any]:
        """A JSON summary: inputs, outputs and nodes with their kinds and dependencies."""
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "inputs": {k: str(t) for k, (t, _) in self.input_types.items()},
            "outputs": {k: str(t) for k, t in self.output_types.items()},
            "nodes": {
                n: {"uses": node.kind.name, "after": sorted(node.deps)}
                for n, node in self.nodes.items()
            },
        }
