"""``evaluators:`` at define time (problems at their lines, the digest) and their scores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import engine
from engine.errors import DefinitionError
from engine.evaluation import EvaluationFailed, FinishedRun, Score, evaluate, sampled
from engine.evaluator_spec import EvaluatorSpec
from engine.providers.base import ModelCall, ProviderResult
from engine.providers.sim import SimProvider

BASE = """
name: evaluated
inputs:
  prompt: text
nodes:
  write:
    uses: llm.generate
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
outputs:
  text: "${write.text}"
  words: 7
"""

GOOD = """\
evaluators:
  - name: shape
    uses: check
    with: {output: text, present: true, min_length: 5, pattern: "(?i)sneaker"}
  - name: quality
    uses: judge
    sample: 0.5
    budget: {max_cost_usd: 0.01}
    with: {model: sim/judge, rubric: "Is it vivid?", output: text}
"""


def _one(text: str) -> str:
    return BASE + "evaluators:\n" + text


def test_evaluators_are_part_of_the_version() -> None:
    with_them = engine.define(BASE + GOOD)
    assert with_them.spec.evaluators[1].sample == 0.5
    assert engine.define(BASE).digest != with_them.digest
    changed = engine.define(BASE + GOOD.replace("0.5", "0.25"))
    assert changed.digest != with_them.digest
    assert "evaluators" not in engine.define(BASE).spec.normalized()


@pytest.mark.parametrize(
    ("evaluator", "location", "code"),
    [
        ("  - {name: a, uses: check, with: {output: nope, present: true}}",
         "evaluators[0].with.output", "unknown_output"),
        ('  - {name: a, uses: check, with: {output: text, pattern: "("}}',
         "evaluators[0].with.pattern", "bad_pattern"),
        ("  - {name: a, uses: check, with: {output: text, presnt: true}}",
         "evaluators[0].with.presnt", "unknown_param"),
        ("  - {name: a, uses: judge, with: {model: sim/writer-small, rubric: r, output: text}}",
         "evaluators[0].with.model", "bad_model"),
        ("  - {name: a, uses: judge, with: {model: nowhere/x, rubric: r, output: text}}",
         "evaluators[0].with.model", "bad_model"),
        ("  - {name: a, uses: judge, with: {model: sim/judge, output: text}}",
         "evaluators[0].with.rubric", "missing_param"),
    ],
)  # fmt: skip
def test_evaluators_are_checked_at_define_time(evaluator: str, location: str, code: str) -> None:
    problems = [p for p in engine.check(_one(evaluator)) if p.severity == "error"]
    assert [(p.location, p.code) for p in problems] == [(location, code)]
    assert problems[0].line is not None


def test_duplicate_evaluator_names_are_refused() -> None:
    twice = "  - {name: a, uses: check, with: {output: text, present: true}}\n"
    problems = [p for p in engine.check(_one(twice * 2)) if p.severity == "error"]
    assert [(p.location, p.code) for p in problems] == [
        ("evaluators[1].name", "duplicate_evaluator")
    ]
    assert problems[0].line is not None


@pytest.mark.parametrize(
    "evaluator",
    [
        "  - {name: a, uses: check, sample: 1.5, with: {output: text, present: true}}",
        "  - {name: a, uses: check, sample: -0.1, with: {output: text, present: true}}",
        "  - {name: a, uses: grade, with: {output: text, present: true}}",
        "  - {name: 'a b', uses: check, with: {output: text, present: true}}",
    ],
)
def test_malformed_evaluators_are_definition_errors(evaluator: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        engine.define(_one(evaluator))
    problem = raised.value.problems[0]
    assert problem.location.startswith("evaluators[0]")
    assert problem.line is not None


def _score(spec: dict[str, Any], run: FinishedRun, source: str = BASE) -> Score:
    workflow = engine.define(source).spec
    evaluator = EvaluatorSpec.model_validate(spec)
    providers = {"sim": SimProvider(time_scale=0)}
    return asyncio.run(evaluate(evaluator, run, workflow=workflow, providers=providers))


@pytest.mark.parametrize(
    ("conditions", "value", "failed"),
    [
        ({"present": True, "min_length": 3, "pattern": "^a "}, "a red sneaker", []),
        ({"present": True}, "", ["present"]),
        ({"max_length": 3, "pattern": "^b"}, "a red sneaker", ["max_length", "pattern"]),
        ({"min": 1, "max": 5}, 7, ["max"]),
        ({"min": 1}, "seven", ["min"]),
        ({"max_latency_s": 0.5}, "x", ["max_latency_s"]),
    ],
)
def test_a_check_scores_one_when_every_condition_holds(
    conditions: dict[str, Any], value: Any, failed: list[str]
) -> None:
    run = FinishedRun("r1", {"text": value}, latency_s=0.9)
    score = _score({"name": "c", "uses": "check", "with": {"output": "text", **conditions}}, run)
    assert (score.metric, score.kind) == ("eval.c", "proportion")
    assert score.value == (0.0 if failed else 1.0)
    assert score.detail == {"failed": failed}
    assert score.cost_usd == 0


def test_the_sim_judge_follows_the_models_quality_and_is_billed() -> None:
    judge = {"name": "q", "uses": "judge", "with": {"model": "sim/judge", "rubric": "vivid?",
                                                    "output": "text"}}  # fmt: skip
    scores = {}
    for model in ("writer-small", "writer-large"):
        source = BASE.replace("writer-small", model)
        result = engine.run_sync(source, {"prompt": "a red sneaker"}, seed=3)
        quality = {n: float(s.meta["quality"]) for n, s in result.trace.steps.items()}
        run = FinishedRun(str(result.trace.run_id), result.outputs or {}, 1.0, quality)
        first, again = _score(judge, run, source), _score(judge, run, source)
        assert first == again  # deterministic
        assert first.kind == "mean" and 0 <= first.value <= 1 and first.cost_usd > 0
        assert "write" in first.detail["reasoning"]
        scores[model] = first.value
    assert scores["writer-large"] > scores["writer-small"] + 0.1


def test_a_judge_over_its_budget_is_not_called() -> None:
    judge = {"name": "q", "uses": "judge", "budget": {"max_cost_usd": 1e-9},
             "with": {"model": "sim/judge", "rubric": "vivid?", "output": "text"}}  # fmt: skip
    with pytest.raises(EvaluationFailed) as raised:
        _score(judge, FinishedRun("r1", {"text": "a red sneaker"}, 1.0, {"write": 0.8}))
    assert raised.value.code == "budget_exceeded"


def test_sampling_is_sticky_and_near_its_rate() -> None:
    spec = EvaluatorSpec.model_validate({"name": "c", "uses": "check", "sample": 0.3,
                                         "with": {"output": "text", "present": True}})  # fmt: skip
    picks = [sampled(spec, f"run-{i}") for i in range(4000)]
    assert picks == [sampled(spec, f"run-{i}") for i in range(4000)]
    assert 0.27 < sum(picks) / len(picks) < 0.33
    none = spec.model_copy(update={"sample": 0.0})
    assert not any(sampled(none, f"run-{i}") for i in range(1000))


class _Answering:
    """A provider whose text model answers ``text`` (a real judge's JSON, or not)."""

    def __init__(self, text: str) -> None:
        self.name = "fake"
        self.max_concurrency: int | None = None
        self.text = text
        self.calls: list[ModelCall] = []

    def supports(self, task: str) -> bool:
        return task == "text"

    def knows_model(self, model: str) -> bool | None:
        return None

    async def invoke(self, call: ModelCall) -> ProviderResult:
        self.calls.append(call)
        return ProviderResult(outputs={"text": self.text}, cost_usd=0.002)

    async def aclose(self) -> None:
        return None


def _judge_with(provider: _Answering) -> Score:
    judged = {"model": "fake/grader", "rubric": "Vivid?", "output": "text"}
    spec = EvaluatorSpec.model_validate({"name": "q", "uses": "judge", "with": judged})
    run = FinishedRun("r1", {"text": "a red sneaker"}, 1.0)
    workflow = engine.define(BASE).spec
    return asyncio.run(evaluate(spec, run, workflow=workflow, providers={"fake": provider}))


def test_a_model_judge_is_asked_for_json() -> None:
    provider = _Answering('Sure. {"score": 0.75, "reasoning": "concrete, a bit plain"}')
    score = _judge_with(provider)
    assert (score.value, score.kind, score.cost_usd) == (0.75, "mean", 0.002)
    assert score.detail == {"reasoning": "concrete, a bit plain", "model": "fake/grader"}
    call = provider.calls[0]
    assert "Vivid?" in call.inputs["prompt"] and "a red sneaker" in call.inputs["prompt"]
    assert "JSON" in call.inputs["system"]


@pytest.mark.parametrize("text", ["no idea", '{"score": 7}', '{"reasoning": "x"}', "{bad json}"])
def test_a_judge_answer_without_a_score_in_range_fails_and_is_billed(text: str) -> None:
    with pytest.raises(EvaluationFailed) as raised:
        _judge_with(_Answering(text))
    assert raised.value.code == "bad_answer" and raised.value.cost_usd == 0.002
