"""Run budgets in the engine: a run stops before the step that would cross its budget, bills at
most its budget (estimates are exact for the simulator's media), and resumes with a raised one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import engine
from engine.budget import Budget, BudgetGuard
from engine.errors import DefinitionError
from engine.providers import SimProvider
from engine.providers.base import ModelCall
from engine.providers.openai import DEFAULT_ANSWER_TOKENS, OpenAIProvider


def _chain(budget: dict[str, Any] | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {
        "name": "budgeted",
        "inputs": {"secs": {"type": "number", "default": 8}},
        "nodes": {
            "script": {
                "uses": "llm.generate",
                "with": {"model": "sim/writer-large", "prompt": "a"},
            },
            "clip": {
                "uses": "video.generate",
                "with": {
                    "model": "sim/video-hq",
                    "prompt": "${script.text}",
                    "seconds": "${inputs.secs}",
                },
            },
        },
        "outputs": {"video": "${clip.video}"},
    }
    if budget is not None:
        source["budget"] = budget
    return source


def _fan_out(count: int, budget: float) -> dict[str, Any]:
    nodes = {
        f"clip{i}": {
            "uses": "video.generate",
            "with": {"model": "sim/video-fast", "prompt": f"shot {i}", "seconds": 8},
        }
        for i in range(count)
    }
    return {
        "name": "fan",
        "budget": {"max_cost_usd": budget},
        "nodes": nodes,
        "outputs": {n: f"${{{n}.video}}" for n in nodes},
    }


def _engine(time_scale: float = 0) -> engine.Engine:
    return engine.Engine(
        providers=[SimProvider(time_scale=time_scale)], cache=engine.MemoryStepCache()
    )


def _run(source: Any, inputs: dict[str, Any] | None = None, **kw: Any) -> engine.RunResult:
    """A run on the simulator without its latency (``time_scale``: some, to overlap branches)."""
    time_scale = kw.pop("time_scale", 0)

    async def go() -> engine.RunResult:
        async with _engine(time_scale) as eng:
            return await eng.run(source, inputs, **kw)

    return asyncio.run(go())


def test_a_step_that_would_cross_the_budget_is_not_started() -> None:
    result = _run(_chain({"max_cost_usd": 1.0}), {"secs": 4}, seed=3)
    assert result.status == "budget_exceeded"
    assert result.outputs is None
    assert result.trace.error_code == "budget_exceeded"
    clip = result.trace.steps["clip"]
    assert clip.status == "cancelled"
    assert clip.attempts == 0
    # The reason names the step and the figures: its estimate (4 s at $0.35/s) and the limit.
    assert "'clip'" in (result.error or "")
    assert "$1.4000" in (result.error or "")
    assert "max_cost_usd $1.0000" in (result.error or "")
    assert result.trace.cost_usd == result.trace.steps["script"].cost_usd < 1.0
    assert result.trace.to_json()["status"] == "budget_exceeded"


def test_a_run_within_its_budget_succeeds_and_a_run_budget_only_lowers_the_workflows() -> None:
    assert _run(_chain({"max_cost_usd": 1.0}), {"secs": 2}, seed=3).ok
    lowered = _run(
        _chain({"max_cost_usd": 1.0}), {"secs": 2}, seed=3, budget=Budget(max_cost_usd=0.5)
    )
    assert lowered.status == "budget_exceeded"
    # A higher run budget does not raise the workflow's.
    higher = _run(
        _chain({"max_cost_usd": 1.0}), {"secs": 4}, seed=3, budget=Budget(max_cost_usd=100)
    )
    assert higher.status == "budget_exceeded"


@pytest.mark.parametrize(
    ("budget", "figure"),
    [
        ({"max_media_seconds": 3}, "max_media_seconds 3 s"),
        ({"max_tokens": 5}, "max_tokens 5 tokens"),
    ],
)
def test_token_and_media_limits(budget: dict[str, float], figure: str) -> None:
    result = _run(_chain(budget), {"secs": 4}, seed=3)
    assert result.status == "budget_exceeded"
    assert figure in (result.error or "")


@pytest.mark.parametrize("count", [3, 7])
def test_parallel_branches_never_bill_past_the_budget(count: int) -> None:
    # Each clip costs $0.40; in-flight estimates are reserved, so branches cannot overshoot.
    result = _run(_fan_out(count, 1.0), seed=1, time_scale=0.001)
    assert result.status == "budget_exceeded"
    assert result.trace.cost_usd <= 1.0
    billed = [s for s in result.trace.steps.values() if s.cost_usd > 0]
    assert len(billed) == 2


def test_map_items_are_admitted_one_by_one() -> None:
    source = {
        "name": "mapped",
        "budget": {"max_cost_usd": 1.0},
        "nodes": {
            "clips": {
                "uses": "map",
                "with": {
                    "items": [f"shot {i}" for i in range(6)],
                    "concurrency": 3,
                    "node": {
                        "uses": "video.generate",
                        "with": {"model": "sim/video-fast", "prompt": "${item}", "seconds": 8},
                    },
                },
            }
        },
        "outputs": {"clips": "${clips.results}"},
    }
    result = _run(source, seed=2)
    assert result.status == "budget_exceeded"
    assert "clips[" in (result.error or "")


def test_a_resume_with_a_raised_budget_goes_on_without_billing_completed_steps() -> None:
    async def go() -> tuple[engine.RunResult, engine.RunResult]:
        async with _engine() as eng:
            wf = eng.define(_chain({"max_cost_usd": 1.0}))
            first = await eng.run(wf, {"secs": 4}, run_id="budget-resume")
            again = await eng.resume(
                wf,
                "budget-resume",
                {"secs": 4},
                budget=Budget(max_cost_usd=2.0),
                replace_budget=True,
            )
            return first, again

    first, again = asyncio.run(go())
    assert first.status == "budget_exceeded"
    assert again.ok
    assert again.trace.steps["script"].cache_hit
    assert again.trace.cost_usd == pytest.approx(4 * 0.35)


def test_a_resume_counts_what_earlier_attempts_billed_against_the_budget() -> None:
    async def go() -> engine.RunResult:
        async with _engine() as eng:
            wf = eng.define(_chain({"max_cost_usd": 1.0}))
            await eng.run(wf, {"secs": 4}, run_id="budget-twice")
            # Raised, but not enough for what was billed plus the clip.
            return await eng.resume(
                wf,
                "budget-twice",
                {"secs": 4},
                budget=Budget(max_cost_usd=1.4),
                replace_budget=True,
            )

    again = asyncio.run(go())
    assert again.status == "budget_exceeded"
    assert "spent $0.0" in (again.error or "")


@pytest.mark.parametrize(
    "budget",
    [{"max_cost_usd": -1}, {"max_cost_usd": 0}, {"max_tokens": float("inf")}, {"max_usd": 1}],
)
def test_a_budget_must_be_strictly_positive_finite_numbers(budget: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError) as raised:
        engine.define(_chain(budget))
    assert raised.value.problems[0].location.startswith("budget.")
    with pytest.raises(ValueError, match="finite number > 0"):
        Budget(max_cost_usd=float("nan"))


def test_a_budget_in_yaml_is_located_by_line() -> None:
    text = "name: b\nbudget:\n  max_cost_usd: -2\nnodes:\n  t: {uses: template, with: {text: x}}\n"
    with pytest.raises(DefinitionError) as raised:
        engine.define(text)
    assert raised.value.problems[0].line == 3


def test_estimates_come_from_the_price_tables() -> None:
    sim = SimProvider()
    video = sim.estimate(ModelCall("video", "video-hq", {"prompt": "x", "seconds": 10}))
    assert video is not None and video.cost_usd == pytest.approx(3.5)
    assert video.media_seconds == 10
    text = sim.estimate(ModelCall("text", "writer-small", {"prompt": "one two three"}))
    assert text is not None and text.tokens > 0
    assert sim.estimate(ModelCall("video", "nope", {})) is None

    # The estimate bounds what the simulator bills for text.
    async def bill() -> float:
        call = ModelCall("text", "writer-large", {"prompt": "a red sneaker on a beach"}, seed=4)
        return (await sim.invoke(call)).cost_usd

    estimate = sim.estimate(
        ModelCall("text", "writer-large", {"prompt": "a red sneaker on a beach"})
    )
    assert estimate is not None and asyncio.run(bill()) <= estimate.cost_usd
    openai = OpenAIProvider(api_key="k", prices={"gpt": (1.0, 2.0)})
    chat = openai.estimate(ModelCall("text", "gpt", {"prompt": "x" * 300}))
    assert chat is not None
    assert chat.tokens == 100 + DEFAULT_ANSWER_TOKENS
    assert chat.cost_usd == pytest.approx(0.1 + DEFAULT_ANSWER_TOKENS / 1000 * 2.0)


def test_a_guard_settles_estimates_with_bills() -> None:
    runtime = engine.Engine(providers=[SimProvider()]).runtime
    guard = BudgetGuard(Budget(max_cost_usd=1.0), runtime)
    kind = engine.default_kinds.get("video.generate")
    assert kind is not None
    params = {"model": "sim/video-fast", "prompt": "x", "seconds": 10}
    guard.admit("a", kind, params)  # $0.50 reserved
    with pytest.raises(engine.NodeError, match=r"in flight \$0\.5000"):
        guard.admit("b", kind, {**params, "seconds": 12})
    guard.settle("a", 0.5, {"media_seconds": 10})
    guard.admit("b", kind, params)
    assert json.dumps(Budget(max_tokens=3).to_json()) == '{"max_tokens": 3}'
