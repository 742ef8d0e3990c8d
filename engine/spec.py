"""The workflow definition as a user writes it (YAML or JSON), parsed into typed models.

Parsing reports every structural problem at once, each with its dotted location and, when the
source text is known, its line. The content digest is taken over the normalised definition, so
formatting, key order and spelled-out defaults do not change it; the version label does not
either, so re-applying the same graph under a new label is recognisably the same content.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import DefinitionError, Problem
from engine.evaluator_spec import EvaluatorSpec
from engine.sourcemap import SourceMap

__all__ = [
    "BudgetSpec",
    "CacheSpec",
    "CriterionSpec",
    "FallbackSpec",
    "InputSpec",
    "NodeSpec",
    "RetrySpec",
    "TargetsSpec",
    "WorkflowSpec",
    "canonical_json",
    "load_spec",
]

_NAME = r"^[A-Za-z][A-Za-z0-9_\-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetrySpec(_Model):
    """Retry with exponential (or constant) backoff and full jitter, for retryable errors only."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    backoff: Literal["exponential", "constant"] = "exponential"
    initial_s: Annotated[float, Field(ge=0, le=3600)] = 0.5
    max_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    jitter: bool = True


class FallbackSpec(_Model):
    """``on_failure: {fallback: {output: value}}``: the step's outputs when it fails for good."""

    fallback: dict[str, Any]


class CacheSpec(_Model):
    """Share a step's result across runs (memoisation), not only within one run for resume."""

    enabled: bool = True
    ttl_s: Annotated[float, Field(gt=0)] | None = None


_Limit = Annotated[float, Field(gt=0, allow_inf_nan=False, le=1e12)] | None


class BudgetSpec(_Model):
    """``budget:``: what one run may spend at most (``engine.budget``); absent is no limit."""

    max_cost_usd: _Limit = None
    max_tokens: _Limit = None
    max_media_seconds: _Limit = None


class TargetsSpec(_Model):
    """``targets:``: what each version of the workflow should achieve, as measured over its runs:
    exported as gauges for Prometheus's alert rules and shown in experiment results."""

    p95_latency_s: _Limit = None
    error_ratio: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    cost_per_run_usd: _Limit = None

    @pydantic.model_validator(mode="after")
    def _one_target(self) -> TargetsSpec:
        if (
            self.p95_latency_s is None
            and self.error_ratio is None
            and self.cost_per_run_usd is None
        ):
            raise ValueError(
                "targets names at least one of p95_latency_s, error_ratio, cost_per_run_usd"
            )
        return self


_Bound = Annotated[float, Field(allow_inf_nan=False)] | None


class CriterionSpec(_Model):
    """One ``success:`` assertion (``engine.criteria``): about an output or a fact of the run."""

    output: str | None = None
    fact: Literal["cost_usd", "latency_s"] | None = None
    exists: bool = False
    non_empty: bool = False
    type: str | None = None
    pattern: Annotated[str, Field(max_length=1000)] | None = None
    min: _Bound = None
    max: _Bound = None

    @pydantic.model_validator(mode="after")
    def _one_subject_and_a_check(self) -> CriterionSpec:
        if (self.output is None) == (self.fact is None):
            raise ValueError("an assertion names one output (output: NAME) or one fact")
        checks = (self.exists, self.non_empty, self.type, self.pattern, self.min, self.max)
        if all(c is None or c is False for c in checks):
            raise ValueError(
                "an assertion needs a check: exists, non_empty, type, pattern, min, max"
            )
        if self.fact is not None and (self.exists or self.non_empty or self.type or self.pattern):
            raise ValueError(f"{self.fact} is a number: assert min and max on it")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class InputSpec(_Model):
    type: str
    default: Any = None
    required: bool | None = None
    description: str = ""

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class NodeSpec(_Model):
    uses: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    retry: RetrySpec | None = None
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    on_failure: Literal["fail", "skip"] | FallbackSpec = "fail"
    when: str | None = None
    cache: bool | CacheSpec = False
    # Models written as `with.model` is (provider/model), tried in order when the node's own
    # model fails for good on a retryable error (engine.model_chain); checked in engine.fallbacks.
    fallback_models: tuple[str, ...] = ()
    description: str = ""

    @property
    def cache_spec(self) -> CacheSpec | None:
        if isinstance(self.cache, CacheSpec):
            return self.cache if self.cache.enabled else None
        return CacheSpec() if self.cache else None


def _printable_label(value: str) -> str:
    # A version label is printed, compared and stored as text: a control character (a NUL,
    # which PostgreSQL cannot store, or a newline in a CLI listing) has no place in it.
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise ValueError("a version label cannot contain control characters (NUL, newline, ...)")
    return value


class WorkflowSpec(_Model):
    name: Annotated[str, Field(pattern=_NAME, max_length=128)]
    version: (
        Annotated[str, Field(max_length=64), pydantic.AfterValidator(_printable_label)] | None
    ) = None
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    nodes: Annotated[dict[str, NodeSpec], Field(min_length=1)]
    outputs: dict[str, Any] = Field(default_factory=dict)
    deadline_s: Annotated[float, Field(gt=0)] | None = None
    budget: BudgetSpec | None = None
    targets: TargetsSpec | None = None
    success: list[CriterionSpec] = Field(default_factory=list, max_length=100)
    # Part of the version (and its digest): scoring a version differently is another version.
    evaluators: list[EvaluatorSpec] = Field(default_factory=list, max_length=20)

    @pydantic.field_validator("inputs", mode="before")
    @classmethod
    def _short_inputs(cls, value: Any) -> Any:
        # `prompt: text` is shorthand for `prompt: {type: text}`.
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    def normalized(self) -> dict[str, Any]:
        """The definition with defaults dropped: what the digest and diffs are taken over."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data.pop("version", None)
        return data

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self.normalized()).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace: equal data gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + ("with" if part == "with_" else str(part))
    return out or "(root)"


def _pydantic_problems(exc: pydantic.ValidationError, smap: SourceMap) -> list[Problem]:
    problems = []
    for err in exc.errors():
        # Union branches repeat the same field: drop the branch tags pydantic puts in `loc`.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        loc = tuple(p for p in loc if p not in {"literal['fail','skip']", "FallbackSpec"})
        location = _location(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            message = f"unknown field {str(loc[-1])!r}"
            code = "unknown_field"
        elif kind == "missing":
            message = f"required field {str(loc[-1])!r} is missing"
            code = "missing_field"
        else:
            message = err["msg"]
            code = "invalid_field"
        problems.append(Problem(code, location, message, line=smap.line(location)))
    # One message per location is enough; union types otherwise report a field several times.
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in problems:
        if (p.location, p.code) not in seen:
            seen.add((p.location, p.code))
            unique.append(p)
    return unique


def load_spec(
    source: str | bytes | Path | dict[str, Any], *, max_nodes: int | None = None
) -> tuple[WorkflowSpec, SourceMap]:
    """Read a definition from YAML/JSON text, a file path or a mapping.

    Raises ``DefinitionError`` listing every problem; never a parser traceback. A definition
    with more than ``max_nodes`` nodes is refused before it is validated (``too_large``).
    """
    if isinstance(source, Path):
        try:
            source = source.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise DefinitionError([Problem("unreadable", str(source), reason)]) from None
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text ({exc.reason})"
            raise DefinitionError([Problem("unreadable", str(source), reason)]) from None
    smap = SourceMap.empty()
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    if isinstance(source, str):
        data, smap, problems = SourceMap.parse(source, max_nodes=max_nodes)
        if problems:
            raise DefinitionError(problems)
    else:
        data = source
    if not isinstance(data, dict):
        raise DefinitionError(
            [
                Problem(
                    "not_a_mapping",
                    "(root)",
                    "a workflow definition is a mapping with name and nodes",
                )
            ]
        )
    nodes = data.get("nodes")
    if max_nodes is not None and isinstance(nodes, dict) and len(nodes) > max_nodes:
        # Text was counted as it was parsed; this catches mappings and YAML merge keys.
        message = (
            f"the workflow has {len(nodes):,} nodes, more than the limit of {max_nodes:,} "
            "(ROLLGRAPH_MAX_NODES on a server); split it into smaller ones"
        )
        raise DefinitionError([Problem("too_large", "nodes", message, line=smap.line("nodes"))])
    try:
        return WorkflowSpec.model_validate(data), smap
    except pydantic.ValidationError as exc:
        raise DefinitionError(_pydantic_problems(exc, smap)) from None
