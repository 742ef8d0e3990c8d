"""``evaluators:``: what scores a workflow's finished runs, as written and as checked.

An evaluator is a built-in kind with its parameters under ``with``:

* ``check``: conditions on one output (``present``, ``min_length``, ``max_length``,
  ``pattern``, ``min``, ``max``) and on the run (``max_latency_s``); the score is 1 when every
  condition holds, else 0 (a proportion: the share of runs that pass).
* ``judge``: a model scores one output against a ``rubric``: a score in [0, 1] (a mean) and its
  reasoning. ``sim/judge`` is deterministic; other providers are asked for JSON.

``with`` is a mapping here, its keys checked by ``check_evaluators`` against the kind, so that
each problem is reported at its own location (``evaluators[0].with.pattern``) and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from engine.errors import Problem
from engine.providers.base import Provider, split_model

__all__ = [
    "SIM_JUDGE",
    "CheckParams",
    "EvaluatorBudget",
    "EvaluatorSpec",
    "JudgeParams",
    "check_evaluators",
    "params_of",
]

SIM_JUDGE = "judge"  # sim/judge: the simulator's deterministic judge

_Bound = Annotated[float, Field(allow_inf_nan=False)] | None
_Length = Annotated[int, Field(ge=0)] | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EvaluatorBudget(_Model):
    """What one evaluation of one run may cost; billed apart from the run's cost."""

    max_cost_usd: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | None = None


class EvaluatorSpec(_Model):
    # The outcome is named eval.<name>: outcome names are at most 100 characters.
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)]
    uses: Literal["check", "judge"]
    sample: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 1.0
    budget: EvaluatorBudget | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")

    @property
    def metric(self) -> str:
        return f"eval.{self.name}"


class CheckParams(_Model):
    output: str
    present: bool | None = None
    min_length: _Length = None
    max_length: _Length = None
    pattern: Annotated[str, Field(max_length=1000)] | None = None
    min: _Bound = None
    max: _Bound = None
    max_latency_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    @pydantic.model_validator(mode="after")
    def _a_condition(self) -> CheckParams:
        conditions = (self.present, self.min_length, self.max_length, self.pattern)
        if all(c is None for c in (*conditions, self.min, self.max, self.max_latency_s)):
            raise ValueError(
                "a check needs a condition: present, min_length, max_length, pattern, min, "
                "max or max_latency_s"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ValueError(f"min_length {self.min_length} is above max_length {self.max_length}")
        return self


class JudgeParams(_Model):
    model: str
    rubric: Annotated[str, Field(min_length=1, max_length=4000)]
    output: str


def params_of(spec: EvaluatorSpec) -> CheckParams | JudgeParams:
    """The evaluator's ``with``, parsed (valid after ``check_evaluators`` found no problem)."""
    kind = CheckParams if spec.uses == "check" else JudgeParams
    return kind.model_validate(spec.with_)


def check_evaluators(
    evaluators: list[EvaluatorSpec],
    *,
    outputs: Mapping[str, Any],
    providers: Mapping[str, Provider],
) -> list[Problem]:
    """Every define-time problem of a workflow's evaluators."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, evaluator in enumerate(evaluators):
        loc = f"evaluators[{index}]"
        if evaluator.name in seen:
            problems.append(
                Problem(
                    "duplicate_evaluator",
                    f"{loc}.name",
                    f"another evaluator is named {evaluator.name!r}; names are unique",
                )
            )
        seen.add(evaluator.name)
        try:
            params = params_of(evaluator)
        except pydantic.ValidationError as exc:
            problems.extend(_param_problems(exc, f"{loc}.with", evaluator.uses))
            continue
        if params.output not in outputs:
            known = ", ".join(sorted(outputs)) or "none declared"
            problems.append(
                Problem(
                    "unknown_output",
                    f"{loc}.with.output",
                    f"the workflow has no output {params.output!r} (outputs: {known})",
                )
            )
        if isinstance(params, CheckParams) and params.pattern is not None:
            try:
                re.compile(params.pattern)
            except re.error as exc:
                problems.append(
                    Problem(
                        "bad_pattern", f"{loc}.with.pattern", f"not a regular expression: {exc}"
                    )
                )
        if isinstance(params, JudgeParams):
            problem = _model_problem(params.model, providers)
            if problem is not None:
                problems.append(Problem("bad_model", f"{loc}.with.model", problem))
    return problems


def _param_problems(exc: pydantic.ValidationError, loc: str, uses: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        where = ".".join([loc, *(str(p) for p in err["loc"])])
        if err["type"] == "extra_forbidden":
            problems.append(
                Problem("unknown_param", where, f"{uses} has no parameter {err['loc'][-1]!r}")
            )
        elif err["type"] == "missing":
            problems.append(
                Problem("missing_param", where, f"{uses} needs {str(err['loc'][-1])!r}")
            )
        else:
            problems.append(Problem("bad_value", where, err["msg"]))
    return problems


def _model_problem(model: str, providers: Mapping[str, Provider]) -> str | None:
    try:
        provider_name, name = split_model(model)
    except ValueError as exc:
        return str(exc)
    provider = providers.get(provider_name)
    if provider is None:
        known = ", ".join(sorted(providers))
        return f"no provider {provider_name!r} is configured (providers: {known})"
    if provider_name == "sim":
        if name != SIM_JUDGE:
            return f"the simulator's judge is sim/{SIM_JUDGE}, not sim/{name}"
        return None
    if not provider.supports("text"):
        return f"{provider_name} has no text models to judge with"
    if provider.knows_model(name) is False:
        return f"{provider_name} has no model {name!r}"
    return None
