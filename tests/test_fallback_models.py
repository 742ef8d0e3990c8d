"""Model fallbacks: a model node's ``fallback_models`` are tried in order after its own model
fails for good on a retryable error, each call traced with its model, status, error and cost,
each model's turn admitted against the budget with its own estimate; checked when defined."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import engine
from engine.budget import Budget
from engine.errors import ValidationError
from engine.fallbacks import MAX_FALLBACK_MODELS
from engine.providers import SimProvider
from engine.providers.sim import SIM_MODELS, SimModel

# `video-down` always fails retryably (an outage); `video-ok` never fails.
_MODELS = {
    **SIM_MODELS,
    "video-down": SimModel("video", 6.0, price_per_media_second=0.05, failure_rate=1.0),
    "video-ok": SimModel("video", 6.0, price_per_media_second=0.10, failure_rate=0.0),
    "video-ok-cheap": SimModel("video", 6.0, price_per_media_second=0.01, failure_rate=0.0),
    "writer-down": SimModel("text", 0.3, price_per_1k_input_tokens=0.001, failure_rate=1.0),
    "writer-ok": SimModel("text", 0.3, price_per_1k_output_tokens=0.01, failure_rate=0.0),
}
_RETRY = {"max_attempts": 2, "initial_s": 0}


def _workflow(
    fallbacks: list[str],
    *,
    model: str = "sim/video-down",
    prompt: str = "a fox",
    budget: dict[str, float] | None = None,
) -> dict[str, Any]:
    nodes: dict[str, Any] = {
        "clip": {
            "uses": "video.generate",
            "with": {"model": model, "prompt": prompt, "seconds": 4},
            "retry": _RETRY,
            "fallback_models": fallbacks,
        }
    }
    outputs = {"video": "${clip.video}"}
    source: dict[str, Any] = {"name": "fallbacks", "nodes": nodes, "outputs": outputs}
    if budget is not None:
        source["budget"] = budget
    return source


def _engine() -> engine.Engine:
    return engine.Engine(
        providers=[SimProvider(time_scale=0, models=_MODELS)], cache=engine.MemoryStepCache()
    )


def _run(source: dict[str, Any]) -> engine.RunResult:
    async def go() -> engine.RunResult:
        async with _engine() as eng:
            return await eng.run(source, seed=1)

    return asyncio.run(go())


def test_a_retryable_failure_falls_back_and_every_attempt_is_traced_with_its_cost() -> None:
    result = _run(_workflow(["sim/video-ok"]))
    assert result.ok, result.error
    step = result.trace.steps["clip"]
    assert step.status == "succeeded"
    assert step.meta["served_by"] == "sim/video-ok"
    attempts = step.meta["model_attempts"]
    assert [(a["model"], a["attempt"], a["status"]) for a in attempts] == [
        ("sim/video-down", 1, "failed"),
        ("sim/video-down", 2, "failed"),
        ("sim/video-ok", 1, "succeeded"),
    ]
    assert {a["error_code"] for a in attempts[:2]} <= {"rate_limited", "server_error"}
    assert [a["cost_usd"] for a in attempts] == [0.0, 0.0, pytest.approx(0.4)]
    assert step.attempts == 3
    assert step.cost_usd == pytest.approx(0.4)  # 4 s at $0.10/s, billed by the fallback
    assert result.trace.cost_usd == pytest.approx(0.4)
    # The trace as stored carries the same record.
    stored = next(s for s in result.trace.to_json()["steps"] if s["node"] == "clip")
    assert stored["meta"]["served_by"] == "sim/video-ok"
    assert len(stored["meta"]["model_attempts"]) == 3


def test_the_fallbacks_are_tried_in_order() -> None:
    result = _run(_workflow(["sim/video-ok-cheap", "sim/video-ok"]))
    assert result.trace.steps["clip"].meta["served_by"] == "sim/video-ok-cheap"


def test_a_non_retryable_failure_does_not_fall_back() -> None:
    # The simulator refuses a blank prompt (bad_input): another model would be billed for it.
    result = _run(_workflow(["sim/video-ok"], model="sim/video-ok-cheap", prompt="   "))
    assert result.status == "failed"
    step = result.trace.steps["clip"]
    assert step.error_code == "bad_input"
    assert [a["model"] for a in step.meta["model_attempts"]] == ["sim/video-ok-cheap"]
    assert step.attempts == 1


def test_when_every_model_fails_the_message_lists_the_attempts() -> None:
    models = {**_MODELS, "video-down2": SimModel("video", 1.0, failure_rate=1.0)}

    async def go() -> engine.RunResult:
        provider = SimProvider(time_scale=0, models=models)
        async with engine.Engine(providers=[provider]) as eng:
            return await eng.run(_workflow(["sim/video-down2"]), seed=1)

    result = asyncio.run(go())
    assert result.status == "failed"
    step = result.trace.steps["clip"]
    assert step.attempts == 4
    assert step.error is not None
    assert step.error.startswith("every model failed (2 models, 4 attempts): sim/video-down: ")
    assert "(2 attempts); sim/video-down2: " in step.error
    assert step.error_code in {"rate_limited", "server_error"}
    assert [a["status"] for a in step.meta["model_attempts"]] == ["failed"] * 4


def test_the_budget_stops_the_run_before_a_fallback_it_cannot_afford() -> None:
    # The primary (4 s at $0.05/s = $0.20) is admitted; the fallback ($0.40) is not.
    result = _run(_workflow(["sim/video-ok"], budget={"max_cost_usd": 0.3}))
    assert result.status == "budget_exceeded"
    step = result.trace.steps["clip"]
    assert "$0.4000" in (result.error or "")
    attempts = step.meta["model_attempts"]
    assert [(a["model"], a["status"]) for a in attempts] == [
        ("sim/video-down", "failed"),
        ("sim/video-down", "failed"),
        ("sim/video-ok", "budget_exceeded"),
    ]
    assert step.attempts == 2
    assert result.trace.cost_usd == 0.0


def test_a_resumed_run_does_not_bill_a_step_served_by_a_fallback_again() -> None:
    source = {
        "name": "resumed",
        "budget": {"max_cost_usd": 0.5},
        "nodes": {
            "script": {
                "uses": "llm.generate",
                "with": {"model": "sim/writer-down", "prompt": "a fox"},
                "retry": _RETRY,
                "fallback_models": ["sim/writer-ok"],
            },
            # Dearer than the budget: the run stops here, after the script was served.
            "clip": {
                "uses": "video.generate",
                "with": {"model": "sim/video-ok", "prompt": "${script.text}", "seconds": 8},
            },
        },
        "outputs": {"video": "${clip.video}"},
    }

    async def go() -> tuple[engine.RunResult, engine.RunResult]:
        async with _engine() as eng:
            wf = eng.define(source)
            first = await eng.run(wf, run_id="fallback-resume", seed=1)
            again = await eng.resume(
                wf, "fallback-resume", budget=Budget(max_cost_usd=2.0), replace_budget=True
            )
            return first, again

    first, again = asyncio.run(go())
    assert first.status == "budget_exceeded"
    billed = first.trace.steps["script"].cost_usd
    assert billed > 0
    assert first.trace.steps["script"].meta["served_by"] == "sim/writer-ok"
    assert again.ok, again.error
    script = again.trace.steps["script"]
    assert script.cache_hit
    assert script.cost_usd == 0.0
    assert script.cost_saved_usd == pytest.approx(billed)
    assert script.meta["served_by"] == "sim/writer-ok"
    assert again.trace.cost_usd == pytest.approx(0.8)  # the clip only


def _problems(fallbacks: Any, **kw: Any) -> list[tuple[str, str, str]]:
    with pytest.raises(ValidationError) as raised:
        engine.Engine(providers=[SimProvider(models=_MODELS)]).define(
            _workflow(fallbacks, **kw) if not isinstance(fallbacks, dict) else fallbacks
        )
    return [(p.code, p.location, p.message) for p in raised.value.problems]


@pytest.mark.parametrize(
    ("fallbacks", "code", "words"),
    [
        (["sim/video-hqq"], "bad_model", "fallback model 'sim/video-hqq': sim has no model"),
        (["sim/writer-small"], "bad_model", "is a text model; video.generate needs a video"),
        (["nope/video-hq"], "bad_model", "no provider named 'nope'"),
        (["video-hq"], "bad_model", "must be written provider/model"),
        (["sim/video-down"], "bad_fallback", "is the node's own model"),
        (["sim/video-hq", "sim/video-hq"], "bad_fallback", "is named twice"),
        (["${inputs.m}"], "bad_fallback", "is a reference"),
    ],
)
def test_bad_fallback_models_are_refused_when_defined(
    fallbacks: list[str], code: str, words: str
) -> None:
    problems = _problems(fallbacks)
    assert len(problems) == 1, problems
    found, location, message = problems[0]
    assert found == code
    assert location == f"nodes.clip.fallback_models[{len(fallbacks) - 1}]"
    assert message.startswith("node 'clip': fallback model ")
    assert words in message


def test_too_many_fallback_models_are_refused() -> None:
    models = {f"v{i}": SimModel("video", 1.0) for i in range(MAX_FALLBACK_MODELS + 1)}
    source = _workflow([f"sim/v{i}" for i in range(MAX_FALLBACK_MODELS + 1)])
    with pytest.raises(ValidationError) as raised:
        engine.Engine(providers=[SimProvider(models={**_MODELS, **models})]).define(source)
    [problem] = raised.value.problems
    assert problem.location == "nodes.clip.fallback_models"
    assert f"more than the limit of {MAX_FALLBACK_MODELS}" in problem.message


def test_only_model_kinds_may_name_fallback_models() -> None:
    source = {
        "name": "plain",
        "nodes": {
            "t": {
                "uses": "template",
                "with": {"text": "hi"},
                "fallback_models": ["sim/writer-small"],
            }
        },
    }
    [(code, location, message)] = _problems(source)
    assert (code, location) == ("bad_fallback", "nodes.t.fallback_models")
    assert "node 't' uses template, which calls no model" in message


def test_a_definition_without_fallbacks_keeps_its_digest() -> None:
    plain = engine.define(
        {"name": "d", "nodes": {"t": {"uses": "template", "with": {"text": "x"}}}}
    )
    assert "fallback_models" not in plain.spec.normalized()["nodes"]["t"]
