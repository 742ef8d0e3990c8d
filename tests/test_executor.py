"""The executor: dataflow order, retries, timeouts, failure policies, cancellation, limits, map."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import pytest

import engine
from engine.providers import ModelCall, ProviderResult
from tests.fixtures import example

Kind = Callable[[engine.NodeContext, dict[str, Any]], Coroutine[Any, Any, Any]]


def build(
    spec: dict[str, Any],
    kinds: Mapping[str, Kind],
    *,
    required: tuple[str, ...] = (),
    **engine_kw: Any,
) -> tuple[engine.Engine, engine.Workflow]:
    """An engine whose registry holds the built-ins plus ``kinds`` taking json ``x`` and ``y``
    (optional, or required for the kinds named in ``required``) and giving json ``out``."""
    reg = engine.default_kinds.copy()
    for name, fn in kinds.items():
        param = engine.Param.of("json") if name in required else engine.Param.optional("json")
        engine.node_kind(name, inputs={"x": param, "y": param}, outputs={"out": "json"}, kinds=reg)(
            fn
        )
    providers = engine_kw.pop("providers", [])
    eng = engine.Engine(kinds=reg, providers=providers, **engine_kw)
    return eng, eng.define({"name": "t", **spec})


def run(
    eng: engine.Engine, wf: engine.Workflow, inputs: dict[str, Any] | None = None, **kw: Any
) -> engine.RunResult:
    async def go() -> engine.RunResult:
        try:
            return await eng.run(wf, inputs or {}, **kw)
        finally:
            await eng.aclose()

    return asyncio.run(go())


def steps(result: engine.RunResult) -> dict[str, dict[str, Any]]:
    return {s["node"]: s for s in result.trace.to_json()["steps"]}


async def echo(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
    return {"out": [ctx.node, p.get("x"), p.get("y")]}


def test_a_node_starts_when_its_own_inputs_are_ready_not_when_its_layer_is_done() -> None:
    # A → B → B2 beside A → C; C only finishes once B2 has started. A layer-by-layer scheduler
    # would wait for C before starting B2 and never finish (the deadline would fail the run).
    b2_started = asyncio.Event()

    async def slow_c(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        await b2_started.wait()
        return {"out": "c"}

    async def b2(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        b2_started.set()
        return {"out": "b2"}

    spec = {
        "nodes": {
            "a": {"uses": "t.echo"},
            "b": {"uses": "t.echo", "with": {"x": "${a.out}"}},
            "b2": {"uses": "t.b2", "with": {"x": "${b.out}"}},
            "c": {"uses": "t.c", "with": {"x": "${a.out}"}},
            "d": {"uses": "t.echo", "with": {"x": "${b2.out}", "y": "${c.out}"}},
        },
        "outputs": {"d": "${d.out}"},
    }
    eng, wf = build(spec, {"t.echo": echo, "t.c": slow_c, "t.b2": b2})
    result = run(eng, wf, deadline_s=5)
    assert result.ok, result.error
    assert result.outputs == {"d": ["d", "b2", "c"]}


def test_independent_branches_overlap() -> None:
    running: set[str] = set()
    overlap: list[set[str]] = []
    both = asyncio.Barrier(2)

    async def branch(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        running.add(ctx.node)
        await both.wait()  # returns only once both branches are in flight at the same time
        overlap.append(set(running))
        return {"out": ctx.node}

    spec = {
        "nodes": {
            "a": {"uses": "t.echo"},
            "video": {"uses": "t.branch", "with": {"x": "${a.out}"}},
            "voice": {"uses": "t.branch", "with": {"x": "${a.out}"}},
            "cut": {"uses": "t.echo", "with": {"x": "${video.out}", "y": "${voice.out}"}},
        },
        "outputs": {"cut": "${cut.out}"},
    }
    eng, wf = build(spec, {"t.echo": echo, "t.branch": branch})
    result = run(eng, wf, deadline_s=5)
    assert result.ok and overlap[0] == {"video", "voice"}


def flaky(failures: int, *, retryable: bool = True) -> tuple[Kind, list[int]]:
    calls: list[int] = []

    async def fn(ctx: engine.NodeContext, p: dict[str, Any]) -> Any:
        calls.append(ctx.attempt)
        if len(calls) <= failures:
            raise engine.NodeError("rate limited", retryable=retryable, code="rate_limited")
        return engine.NodeResult({"out": "ok"}, cost_usd=0.25)

    return fn, calls


def test_retryable_errors_retry_with_backoff_until_success() -> None:
    fn, calls = flaky(2)
    spec = {
        "nodes": {"a": {"uses": "t.flaky", "retry": {"max_attempts": 3, "initial_s": 0.001}}},
        "outputs": {"a": "${a.out}"},
    }
    eng, wf = build(spec, {"t.flaky": fn})
    result = run(eng, wf)
    assert result.ok and calls == [1, 2, 3]
    step = steps(result)["a"]
    assert step["attempts"] == 3 and step["cost_usd"] == 0.25


def test_non_retryable_errors_are_not_retried() -> None:
    fn, calls = flaky(1, retryable=False)
    spec = {"nodes": {"a": {"uses": "t.flaky", "retry": {"max_attempts": 5, "initial_s": 0}}}}
    eng, wf = build(spec, {"t.flaky": fn})
    result = run(eng, wf)
    assert not result.ok and calls == [1]
    assert result.trace.error_code == "rate_limited"
    assert steps(result)["a"]["status"] == "failed"


def test_retries_give_up_after_max_attempts() -> None:
    fn, calls = flaky(10)
    spec = {"nodes": {"a": {"uses": "t.flaky", "retry": {"max_attempts": 4, "initial_s": 0}}}}
    eng, wf = build(spec, {"t.flaky": fn})
    result = run(eng, wf)
    assert not result.ok and calls == [1, 2, 3, 4]


def test_backoff_is_exponential_capped_and_jittered() -> None:
    import random

    from engine.executor import backoff_delay
    from engine.spec import RetrySpec

    policy = RetrySpec(initial_s=1, max_s=5, jitter=False)
    assert [backoff_delay(policy, n, random.Random(1)) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = RetrySpec(initial_s=1, max_s=5)
    rng = random.Random(7)
    delays = [backoff_delay(jittered, 3, rng) for _ in range(200)]
    assert all(0 <= d <= 4 for d in delays) and len(set(delays)) > 100
    constant = RetrySpec(initial_s=0.5, backoff="constant", jitter=False)
    assert backoff_delay(constant, 5, rng) == 0.5


async def hang(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def test_timeouts_are_retryable() -> None:
    spec = {
        "nodes": {
            "a": {"uses": "t.hang", "timeout_s": 0.02, "retry": {"max_attempts": 2, "initial_s": 0}}
        }
    }
    eng, wf = build(spec, {"t.hang": hang})
    result = run(eng, wf)
    step = steps(result)["a"]
    assert step["status"] == "failed" and step["attempts"] == 2 and step["error_code"] == "timeout"


def test_a_required_failure_cancels_the_in_flight_nodes() -> None:
    fn, _ = flaky(1, retryable=False)
    spec = {
        "nodes": {
            "slow": {"uses": "t.hang"},
            "bad": {"uses": "t.flaky"},
            "after": {"uses": "t.echo", "with": {"x": "${bad.out}", "y": "${slow.out}"}},
        },
        "outputs": {"x": "${after.out}"},
    }
    eng, wf = build(spec, {"t.hang": hang, "t.flaky": fn, "t.echo": echo})
    result = run(eng, wf, deadline_s=5)
    s = steps(result)
    assert result.status == "failed" and result.outputs is None
    assert (s["bad"]["status"], s["slow"]["status"], s["after"]["status"]) == (
        "failed",
        "cancelled",
        "cancelled",
    )
    assert "bad" in (result.error or "")


def test_run_deadline_fails_the_run_and_cancels_everything() -> None:
    spec = {"nodes": {"a": {"uses": "t.hang"}}, "deadline_s": 0.05}
    eng, wf = build(spec, {"t.hang": hang})
    result = run(eng, wf)
    assert result.status == "failed" and result.trace.error_code == "deadline_exceeded"
    assert steps(result)["a"]["status"] == "cancelled"


def test_fallback_replaces_the_outputs_of_a_failed_step() -> None:
    fn, _ = flaky(9, retryable=False)
    spec = {
        "nodes": {
            "a": {"uses": "t.flaky", "on_failure": {"fallback": {"out": "default"}}},
            "b": {"uses": "t.echo", "with": {"x": "${a.out}"}},
        },
        "outputs": {"b": "${b.out}"},
    }
    eng, wf = build(spec, {"t.flaky": fn, "t.echo": echo})
    result = run(eng, wf)
    assert result.ok and result.outputs == {"b": ["b", "default", None]}
    assert steps(result)["a"]["status"] == "fallback"


def test_skip_on_failure_skips_dependents_and_cancels_what_no_longer_matters() -> None:
    gate = asyncio.Event()

    async def late_fail(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        gate.set()
        raise engine.NodeError("boom")

    async def helper(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        await gate.wait()
        await asyncio.Event().wait()  # would run forever if not cancelled
        return {"out": 1}

    spec = {
        "nodes": {
            "a": {"uses": "t.late", "on_failure": "skip"},
            "helper": {"uses": "t.helper"},  # only feeds `uses_both`, which needs `a`
            "uses_both": {"uses": "t.need", "with": {"x": "${a.out}", "y": "${helper.out}"}},
            "other": {"uses": "t.echo"},
        },
        "outputs": {"both": "${uses_both.out}", "other": "${other.out}"},
    }
    kinds = {"t.late": late_fail, "t.helper": helper, "t.echo": echo, "t.need": echo}
    eng, wf = build(spec, kinds, required=("t.need",))
    result = run(eng, wf, deadline_s=5)
    s = steps(result)
    assert result.ok, result.error
    assert result.outputs == {"both": None, "other": ["other", None, None]}
    assert s["a"]["status"] == "failed" and s["uses_both"]["status"] == "skipped"
    assert s["helper"]["status"] == "cancelled" and "no longer needed" in s["helper"]["reason"]


def test_when_false_skips_the_node_and_its_dependents() -> None:
    spec = {
        "inputs": {"go": "boolean"},
        "nodes": {
            "a": {"uses": "t.echo", "when": "${inputs.go}"},
            "b": {"uses": "t.need", "with": {"x": "${a.out}", "y": 1}},
            "c": {"uses": "t.echo", "when": "not ${inputs.go}"},
            "d": {"uses": "t.echo", "with": {"x": "${a.out}"}},  # optional input: still runs
        },
        "outputs": {"b": "${b.out}", "c": "${c.out}", "d": "${d.out}"},
    }
    kinds = {"t.echo": echo, "t.need": echo}
    eng, wf = build(spec, kinds, required=("t.need",))
    result = run(eng, wf, {"go": False})
    assert result.outputs == {"b": None, "c": ["c", None, None], "d": ["d", None, None]}
    statuses = [steps(result)[n]["status"] for n in "abcd"]
    assert statuses == ["skipped", "skipped", "succeeded", "succeeded"]
    eng, wf = build(spec, kinds, required=("t.need",))
    assert run(eng, wf, {"go": True}).outputs == {
        "b": ["b", ["a", None, None], 1],
        "c": None,
        "d": ["d", ["a", None, None], None],
    }


def test_a_skipped_optional_input_is_left_out_instead_of_skipping_the_consumer() -> None:
    source = example("v3.3")
    sim = engine.providers.SimProvider(time_scale=0)
    reg = engine.default_kinds

    async def always_fail(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        raise engine.NodeError("music service down")

    reg2 = reg.copy()
    music = reg.get("music.generate")
    assert music is not None
    reg2.register(
        engine.NodeKind("music.generate", music.inputs, music.outputs, always_fail), replace=True
    )
    eng = engine.Engine(kinds=reg2, providers=[sim])
    result = asyncio.run(_run_close(eng, source, {"prompt": "a sneaker"}))
    s = steps(result)
    assert result.ok and s["music"]["status"] == "failed" and s["cut"]["status"] == "succeeded"
    assert "music" not in result.outputs["video"].meta["sources"]  # type: ignore[index]


async def _run_close(eng: engine.Engine, source: Any, inputs: dict[str, Any]) -> engine.RunResult:
    try:
        return await eng.run(source, inputs)
    finally:
        await eng.aclose()


class CountingProvider:
    """A provider at the network edge that records how many calls overlap."""

    name = "fake"

    def __init__(self, max_concurrency: int | None) -> None:
        self.max_concurrency = max_concurrency
        self.active = 0
        self.peak = 0

    def supports(self, task: str) -> bool:
        return task == "text"

    def knows_model(self, model: str) -> bool | None:
        return None

    async def invoke(self, call: ModelCall) -> ProviderResult:
        self.active += 1
        self.peak = max(self.peak, self.active)
        await asyncio.sleep(0.005)
        self.active -= 1
        return ProviderResult(
            {"text": call.inputs["prompt"]}, cost_usd=0.01, usage={"tokens_in": 1}
        )

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize(
    ("provider_limit", "override", "expected"), [(2, None, 2), (5, {"fake": 1}, 1), (None, None, 6)]
)
def test_per_provider_concurrency_limits(
    provider_limit: int | None, override: dict[str, int] | None, expected: int
) -> None:
    provider = CountingProvider(provider_limit)
    nodes = {
        f"n{i}": {"uses": "llm.generate", "with": {"model": "fake/m", "prompt": f"p{i}"}}
        for i in range(6)
    }
    eng = engine.Engine(providers=[provider], concurrency=override)
    result = asyncio.run(_run_close(eng, {"name": "c", "nodes": nodes}, {}))
    assert result.ok and provider.peak == expected
    assert result.trace.cost_usd == pytest.approx(0.06)


def test_map_fans_out_with_bounded_concurrency_and_keeps_order() -> None:
    provider = CountingProvider(None)
    spec = {
        "name": "m",
        "inputs": {"topics": "list[text]"},
        "nodes": {
            "explain": {
                "uses": "map",
                "with": {
                    "items": "${inputs.topics}",
                    "concurrency": 2,
                    "node": {
                        "uses": "llm.generate",
                        "with": {"model": "fake/m", "prompt": "about ${item}"},
                    },
                },
            }
        },
        "outputs": {"texts": "${explain.results}"},
    }
    eng = engine.Engine(providers=[provider])
    topics = [f"t{i}" for i in range(7)]
    result = asyncio.run(_run_close(eng, spec, {"topics": topics}))
    assert result.ok, result.error
    assert result.outputs == {"texts": [f"about {t}" for t in topics]}
    assert provider.peak == 2
    step = steps(result)["explain"]
    assert step["cost_usd"] == pytest.approx(0.07) and step["usage"] == {"tokens_in": 7.0}


def test_map_item_failure_fails_the_node() -> None:
    calls: list[Any] = []

    async def picky(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        calls.append(p["x"])
        if p["x"] == 3:
            raise engine.NodeError("three is not allowed")
        await asyncio.sleep(0.001)
        return {"out": p["x"] * 2}

    spec = {
        "inputs": {"xs": "list[integer]"},
        "nodes": {
            "m": {
                "uses": "map",
                "with": {
                    "items": "${inputs.xs}",
                    "node": {"uses": "t.picky", "with": {"x": "${item}"}},
                },
            }
        },
        "outputs": {"r": "${m.results}"},
    }
    eng, wf = build(spec, {"t.picky": picky})
    assert run(eng, wf, {"xs": [1, 2]}).outputs == {"r": [2, 4]}
    eng, wf = build(spec, {"t.picky": picky})
    result = run(eng, wf, {"xs": [1, 2, 3, 4]})
    assert not result.ok and "three is not allowed" in (result.error or "")


def test_json_values_are_checked_against_the_typed_input_they_feed() -> None:
    async def api(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        return {"out": {"title": 42}}

    spec = {
        "nodes": {
            "api": {"uses": "t.api"},
            "say": {
                "uses": "llm.generate",
                "with": {"model": "fake/m", "prompt": "${api.out.title}"},
            },
        },
    }
    eng, wf = build(spec, {"t.api": api}, providers=[CountingProvider(None)])
    result = run(eng, wf)
    assert not result.ok and steps(result)["say"]["error_code"] == "bad_input"


def test_a_kind_that_returns_the_wrong_outputs_fails_cleanly() -> None:
    async def wrong(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        return {"nope": 1}

    async def crash(ctx: engine.NodeContext, p: dict[str, Any]) -> dict[str, Any]:
        raise ZeroDivisionError("bug in a user kind")

    eng, wf = build({"nodes": {"a": {"uses": "t.wrong"}}}, {"t.wrong": wrong})
    assert steps(run(eng, wf))["a"]["error_code"] == "bad_output"
    eng, wf = build({"nodes": {"a": {"uses": "t.crash"}}}, {"t.crash": crash})
    step = steps(run(eng, wf))["a"]
    assert step["error_code"] == "internal_error" and "ZeroDivisionError" in step["error"]


def test_run_inputs_are_bound_with_every_problem_at_once() -> None:
    spec = {
        "inputs": {"prompt": "text", "seconds": {"type": "number", "default": 8}, "clip": "video"},
        "nodes": {"a": {"uses": "t.echo", "with": {"x": "${inputs.prompt}"}}},
    }
    _, wf = build(spec, {"t.echo": echo})
    with pytest.raises(engine.InputBindingError) as err:
        wf.bind_inputs({"promt": "x", "seconds": "eight", "clip": "not a uri"})
    assert sorted(p.code for p in err.value.problems) == [
        "bad_input",
        "bad_input",
        "missing_input",
        "unknown_input",
    ]
    bound = wf.bind_inputs({"prompt": "x", "clip": "s3://bucket/clip.mp4"})
    assert bound["seconds"] == 8 and bound["clip"] == engine.MediaRef(
        "video", "s3://bucket/clip.mp4"
    )


def test_trace_is_serialisable_and_costs_count_executed_steps() -> None:
    sim = engine.providers.SimProvider(time_scale=0)
    eng = engine.Engine(providers=[sim])
    source = example("v3.2")
    result = asyncio.run(_run_close(eng, source, {"prompt": "a sneaker"}))
    data = json.loads(json.dumps(result.to_json()))
    trace = data["trace"]
    assert trace["run_id"] == result.run_id and trace["status"] == "succeeded"
    assert [s["node"] for s in trace["steps"]] == ["enhance", "video", "voice", "cut"]
    for s in trace["steps"]:
        assert s["started_at"] <= s["ended_at"] and s["attempts"] >= 1
    assert trace["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in trace["steps"]))
    assert steps(result)["video"]["usage"]["media_seconds"] == 8
    assert data["outputs"]["video"]["$media"]["kind"] == "video"
