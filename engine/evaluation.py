"""Scoring one finished run with one evaluator (``engine.evaluator_spec``).

This is the pure part: what the score is, given the run's outputs, its latency and the quality
figures its steps reported. Who runs it, when, and how the score is stored exactly once is the
control plane's (``control_plane.runs.evaluations``).

* ``check``: 1.0 when every condition holds, else 0.0; the detail names the failed ones.
* ``judge`` on ``sim/judge``: the mean of the simulator's quality figures of the steps the
  judged output reads (every model step when it reads none), so a version written by a better
  simulated model scores higher, deterministically. The call is still made, to the sim
  provider, so that it is billed (and bounded by the budget) like a real judge.
* ``judge`` elsewhere: the model is asked for ``{"score": 0..1, "reasoning": "..."}``.

Sampling is sticky: whether a run is evaluated depends only on its id and the evaluator's
name, so a retried or taken-over evaluation makes the same choice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from engine.errors import NodeError
from engine.evaluator_spec import SIM_JUDGE, CheckParams, EvaluatorSpec, JudgeParams, params_of
from engine.providers.base import Estimating, ModelCall, Provider, split_model
from engine.refs import iter_refs
from engine.spec import WorkflowSpec

__all__ = ["EvaluationFailed", "FinishedRun", "Score", "evaluate", "sampled"]

JUDGE_SYSTEM: Final = (
    "You grade the output of an AI pipeline against a rubric. Reply with JSON only: "
    '{"score": <a number from 0 to 1>, "reasoning": "<one or two sentences>"}'
)
_ATTEMPTS: Final = 3
_JSON_RE: Final = re.compile(r"\{.*\}", re.DOTALL)


class EvaluationFailed(Exception):
    """No score: ``code`` says why (``budget_exceeded``, ``judge_failed``, ``bad_answer``)."""

    def __init__(self, message: str, *, code: str, cost_usd: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.cost_usd = cost_usd


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """What an evaluator reads of a succeeded run."""

    run_id: str
    outputs: Mapping[str, Any]
    latency_s: float | None
    qualities: Mapping[str, float] = field(default_factory=dict)  # node → quality figure


@dataclass(frozen=True, slots=True)
class Score:
    metric: str  # eval.<name>
    kind: Literal["proportion", "mean"]
    value: float
    detail: dict[str, Any]
    cost_usd: float = 0.0


def sampled(spec: EvaluatorSpec, run_id: str) -> bool:
    """Whether ``run_id`` is in the evaluator's sample (the same answer every time)."""
    if spec.sample >= 1:
        return True
    digest = hashlib.sha256(f"{spec.name}:{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < spec.sample


async def evaluate(
    spec: EvaluatorSpec,
    run: FinishedRun,
    *,
    workflow: WorkflowSpec,
    providers: Mapping[str, Provider],
) -> Score:
    params = params_of(spec)
    if isinstance(params, CheckParams):
        value, detail = _check(params, run)
        return Score(spec.metric, "proportion", value, detail)
    return await _judge(spec, params, run, workflow, providers)


def _check(params: CheckParams, run: FinishedRun) -> tuple[float, dict[str, Any]]:
    value = run.outputs.get(params.output)
    failed = [name for name, ok in _conditions(params, value, run.latency_s) if not ok]
    return (0.0 if failed else 1.0), {"failed": failed}


def _conditions(params: CheckParams, value: Any, latency_s: float | None) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    if params.present is not None:
        out.append(("present", (value is not None and value != "") == params.present))
    sized = value if isinstance(value, str | list | dict) else None
    if params.min_length is not None:
        out.append(("min_length", sized is not None and len(sized) >= params.min_length))
    if params.max_length is not None:
        out.append(("max_length", sized is not None and len(sized) <= params.max_length))
    if params.pattern is not None:
        text = value if isinstance(value, str) else None
        out.append(("pattern", text is not None and re.search(params.pattern, text) is not None))
    number = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    if params.min is not None:
        out.append(("min", number is not None and number >= params.min))
    if params.max is not None:
        out.append(("max", number is not None and number <= params.max))
    if params.max_latency_s is not None:
        out.append(("max_latency_s", latency_s is not None and latency_s <= params.max_latency_s))
    return out


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


async def _judge(
    spec: EvaluatorSpec,
    params: JudgeParams,
    run: FinishedRun,
    workflow: WorkflowSpec,
    providers: Mapping[str, Provider],
) -> Score:
    provider_name, model = split_model(params.model)
    provider = providers[provider_name]
    prompt = (
        f"Rubric:\n{params.rubric}\n\nOutput {params.output!r}:\n"
        f"{_as_text(run.outputs.get(params.output))}"
    )
    inputs = {"system": JUDGE_SYSTEM, "prompt": prompt}
    limit = spec.budget.max_cost_usd if spec.budget is not None else None
    text, cost = await _call(provider, model, inputs, run.run_id, spec.metric, limit)
    if provider_name == "sim" and model == SIM_JUDGE:
        value, reasoning = _sim_verdict(params, run, workflow)
    else:
        value, reasoning = _parse_verdict(text, cost)
    detail = {"reasoning": reasoning, "model": params.model}
    return Score(spec.metric, "mean", value, detail, cost)


async def _call(
    provider: Provider,
    model: str,
    inputs: Mapping[str, Any],
    run_id: str,
    node: str,
    limit: float | None,
) -> tuple[str, float]:
    call = ModelCall("text", model, inputs, run_id=run_id, node=node)
    if limit is not None and isinstance(provider, Estimating):
        estimate = provider.estimate(call)
        if estimate is not None and estimate.cost_usd > limit:
            raise EvaluationFailed(
                f"the judge call would cost ${estimate.cost_usd:.6f}, over the evaluator's "
                f"budget of ${limit:g}",
                code="budget_exceeded",
            )
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            result = await provider.invoke(
                ModelCall("text", model, inputs, run_id=run_id, node=node, attempt=attempt)
            )
        except NodeError as exc:
            if exc.retryable and attempt < _ATTEMPTS:
                continue
            raise EvaluationFailed(str(exc), code="judge_failed") from exc
        return str(result.outputs.get("text") or ""), result.cost_usd
    raise AssertionError("unreachable")  # the last attempt returns or raises


def _sim_verdict(
    params: JudgeParams, run: FinishedRun, workflow: WorkflowSpec
) -> tuple[float, str]:
    read = {
        ref.source
        for ref, _, _ in iter_refs(workflow.outputs.get(params.output), "outputs")
        if not isinstance(ref, ValueError)
    }
    figures = {n: q for n, q in run.qualities.items() if n in read} or dict(run.qualities)
    if not figures:
        return 0.5, "sim judge: no step reported a quality figure; scored 0.5"
    value = round(min(1.0, max(0.0, sum(figures.values()) / len(figures))), 4)
    named = ", ".join(f"{n} {q:.2f}" for n, q in sorted(figures.items()))
    return value, f"sim judge: the mean quality figure of the steps behind it ({named})"


def _parse_verdict(text: str, cost: float) -> tuple[float, str]:
    match = _JSON_RE.search(text)
    try:
        answer = json.loads(match.group(0)) if match else None
        score = float(answer["score"]) if isinstance(answer, dict) else None
    except (ValueError, TypeError, KeyError):
        score = None
    if score is None or not 0.0 <= score <= 1.0:
        raise EvaluationFailed(
            f"the judge did not answer a score in [0, 1]: {text[:200]!r}",
            code="bad_answer",
            cost_usd=cost,
        )
    assert isinstance(answer, dict)
    return score, str(answer.get("reasoning") or "")[:2000]
