"""A map's elements as steps: trace entries, billed cost on failure, resume, retry, budget, keys."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

import engine
from engine.budget import Budget
from engine.cache import CachedStep, MemoryStepCache
from engine.providers import ModelCall, ProviderResult
from engine.providers.base import Estimate

PRICE = 0.70  # the figure: 16 elements, $11.20


class Billing:
    """A provider that bills ``PRICE`` per answered call, counts calls per prompt, and fails
    the prompts in ``failing`` (as many times as given; ``-1``: always)."""

    name = "fake"
    max_concurrency: int | None = None

    def __init__(self, failing: dict[str, int] | None = None, *, retryable: bool = False) -> None:
        self.failing = dict(failing or {})
        self.retryable = retryable
        self.calls: Counter[str] = Counter()

    def supports(self, task: str) -> bool:
        return task == "text"

    def knows_model(self, model: str) -> bool | None:
        return None

    def estimate(self, call: ModelCall) -> Estimate:
        return Estimate(cost_usd=PRICE)

    async def invoke(self, call: ModelCall) -> ProviderResult:
        prompt = str(call.inputs["prompt"])
        self.calls[prompt] += 1
        await asyncio.sleep(0)
        left = self.failing.get(prompt, 0)
        if left:
            self.failing[prompt] = left - 1 if left > 0 else left
            raise engine.NodeError(f"no {prompt}", retryable=self.retryable, code="flaky")
        return ProviderResult({"text": prompt.upper()}, cost_usd=PRICE, usage={"tokens_in": 2})

    async def aclose(self) -> None:
        return None


class KeyedCache(MemoryStepCache):
    """The memory cache, remembering which keys were read and written."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[str] = []
        self.gets: list[str] = []

    async def get(self, key: str) -> CachedStep | None:
        self.gets.append(key)
        return await super().get(key)

    async def put(self, key: str, step: CachedStep, *, ttl_s: float | None = None) -> None:
        self.puts.append(key)
        await super().put(key, step, ttl_s=ttl_s)


def mapped(n: int, *, concurrency: int = 1, inner: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "uses": "llm.generate",
        "with": {"model": "fake/m", "prompt": "${item}"},
        "retry": {"max_attempts": 1},
    }
    node.update(inner or {})
    return {
        "name": "m",
        "nodes": {
            "each": {
                "uses": "map",
                "with": {
                    "items": [f"p{i}" for i in range(n)],
                    "concurrency": concurrency,
                    "node": node,
                },
            }
        },
        "outputs": {"texts": "${each.results}"},
    }


def run(
    provider: Billing, source: dict[str, Any], *resumes: Budget | None, **kw: Any
) -> list[engine.RunResult]:
    """A run, then a resume per entry of ``resumes`` (with that budget), on one cache."""

    async def go() -> list[engine.RunResult]:
        async with engine.Engine(providers=[provider], cache=kw.pop("cache", None)) as eng:
            wf = eng.define(source)
            results = [await eng.run(wf, {}, run_id="r1", **kw)]
            for budget in resumes:
                provider.calls.clear()
                results.append(
                    await eng.resume(wf, "r1", {}, budget=budget, replace_budget=budget is not None)
                )
            return results

    return asyncio.run(go())


def map_entry(result: engine.RunResult) -> dict[str, Any]:
    steps = {s["node"]: s for s in result.trace.to_json()["steps"]}
    entry: dict[str, Any] = steps["each"]
    return entry


def test_each_element_has_its_own_trace_entry_with_its_cost() -> None:
    (result,) = run(Billing(), mapped(4, concurrency=2))
    assert result.ok, result.error
    assert result.outputs == {"texts": ["P0", "P1", "P2", "P3"]}
    entry = map_entry(result)
    items = entry["items"]
    assert [i["node"] for i in items] == ["each[0]", "each[1]", "each[2]", "each[3]"]
    for item in items:
        assert item["kind"] == "llm.generate" and item["status"] == "succeeded"
        assert item["attempts"] == 1 and item["cost_usd"] == pytest.approx(PRICE)
        assert item["latency_s"] is not None and item["error"] is None
    assert entry["cost_usd"] == pytest.approx(4 * PRICE)
    assert result.trace.cost_usd == pytest.approx(4 * PRICE)  # counted once, through the map


def test_a_failed_map_records_what_its_elements_billed() -> None:
    provider = Billing({"p2": -1})
    (result,) = run(provider, mapped(4))
    assert not result.ok and "no p2" in (result.error or "")
    entry = map_entry(result)
    assert entry["status"] == "failed"
    assert entry["cost_usd"] == pytest.approx(2 * PRICE)  # was 0 before elements were steps
    assert result.trace.cost_usd == pytest.approx(2 * PRICE)
    states = [(i["status"], i["cost_usd"]) for i in entry["items"]]
    assert states[:3] == [("succeeded", PRICE), ("succeeded", PRICE), ("failed", 0.0)]
    assert entry["items"][2]["error_code"] == "flaky"
    assert entry["items"][3]["status"] == "cancelled" and entry["items"][3]["reason"]


def test_a_resume_reruns_and_bills_only_the_elements_that_did_not_succeed() -> None:
    provider = Billing({"p5": 1})
    first, again = run(provider, mapped(16, concurrency=4), None, cache=MemoryStepCache())
    assert not first.ok
    billed_first = first.trace.cost_usd
    assert again.ok, again.error
    assert again.outputs == {"texts": [f"P{i}" for i in range(16)]}
    done_before = [i for i in map_entry(first)["items"] if i["status"] == "succeeded"]
    assert 0 < len(done_before) < 16
    # Each element that had not succeeded ran once more; none that had succeeded did.
    done = {f"p{int(i['node'][len('each[') : -1])}" for i in done_before}
    assert set(provider.calls) == {f"p{i}" for i in range(16)} - done
    assert all(n == 1 for n in provider.calls.values())
    rerun = 16 - len(done_before)
    assert again.trace.cost_usd == pytest.approx(rerun * PRICE)
    assert again.trace.cost_saved_usd == pytest.approx(len(done_before) * PRICE)
    assert billed_first + again.trace.cost_usd == pytest.approx(16 * PRICE)
    items = map_entry(again)["items"]
    assert sum(i["cache_hit"] for i in items) == len(done_before)


def test_the_inner_nodes_retry_applies_to_each_element() -> None:
    retry = {"retry": {"max_attempts": 3, "initial_s": 0, "jitter": False}}
    provider = Billing({"p1": 2}, retryable=True)
    (result,) = run(provider, mapped(3, inner=retry))
    assert result.ok, result.error
    items = map_entry(result)["items"]
    assert [i["attempts"] for i in items] == [1, 3, 1]
    assert provider.calls["p1"] == 3
    # One attempt only: the same failure fails the map.
    (once,) = run(
        Billing({"p1": 2}, retryable=True), mapped(3, inner={"retry": {"max_attempts": 1}})
    )
    assert not once.ok and map_entry(once)["items"][1]["attempts"] == 1


def test_the_inner_nodes_timeout_applies_to_each_element() -> None:
    class Slow(Billing):
        async def invoke(self, call: ModelCall) -> ProviderResult:
            if call.inputs["prompt"] == "p1":
                await asyncio.sleep(5)
            return await super().invoke(call)

    (result,) = run(Slow(), mapped(2, inner={"timeout_s": 0.05}))
    assert not result.ok
    item = map_entry(result)["items"][1]
    assert item["status"] == "failed" and item["error_code"] == "timeout"


def test_no_element_starts_past_the_budget_and_a_raised_budget_goes_on() -> None:
    provider = Billing()
    source = {**mapped(5), "budget": {"max_cost_usd": 1.5}}
    first, again = run(provider, source, Budget(max_cost_usd=10.0), cache=MemoryStepCache())
    assert first.status == "budget_exceeded"
    assert "each[2]" in (first.error or "")
    items = map_entry(first)["items"]
    assert [i["status"] for i in items] == ["succeeded"] * 2 + ["cancelled"] * 3
    assert items[2]["attempts"] == 0 and "budget exceeded" in items[2]["reason"]
    assert first.trace.cost_usd == pytest.approx(2 * PRICE)
    assert again.ok, again.error
    assert sorted(provider.calls) == ["p2", "p3", "p4"]
    assert again.trace.cost_usd == pytest.approx(3 * PRICE)


def test_elements_are_admitted_while_others_run_and_started_ones_end() -> None:
    provider = Billing()
    source = {**mapped(6, concurrency=3), "budget": {"max_cost_usd": 2.5}}
    (result,) = run(provider, source)
    assert result.status == "budget_exceeded"
    items = map_entry(result)["items"]
    succeeded = [i for i in items if i["status"] == "succeeded"]
    # Three admitted at once (2.10 reserved), the fourth refused; the three end and are billed.
    assert len(succeeded) == 3 and sum(provider.calls.values()) == 3
    assert result.trace.cost_usd == pytest.approx(3 * PRICE)


def test_element_cache_keys_are_the_same_on_every_resume() -> None:
    cache = KeyedCache()
    provider = Billing({"p1": 2})
    first, second, third = run(provider, mapped(3), None, None, cache=cache)
    assert not first.ok and not second.ok and third.ok
    first_puts = [k for k in cache.puts if k.startswith("run:r1:")][:1]  # each[0]
    assert first_puts
    assert cache.gets.count(first_puts[0]) == 2  # read by both resumes, found both times
    # Element 1 was stored once, when it finally succeeded; element 0 only on the first run.
    assert len([k for k in cache.puts if k.startswith("run:r1:")]) == 4  # 0, 2, 1, the map
    assert map_entry(third)["items"][0]["cache_hit"]


def test_an_unknown_field_of_the_inner_node_is_a_warning_naming_it() -> None:
    wf = engine.Engine(providers=[Billing()]).define(mapped(2, inner={"retries": 3}))
    (warning,) = [p for p in wf.warnings if p.code == "unknown_field"]
    assert warning.location == "nodes.each.with.node.retries"
    assert "did you mean retry?" in warning.message and "ignored" in warning.message


@pytest.mark.parametrize(
    ("inner", "code"),
    [
        ({"retry": {"max_attempts": 0}}, "bad_value"),
        ({"retry": {"tries": 2}}, "bad_value"),
        ({"timeout_s": -1}, "bad_value"),
    ],
)
def test_the_inner_node_is_checked_when_defined(inner: dict[str, Any], code: str) -> None:
    with pytest.raises(engine.ValidationError) as caught:
        engine.Engine(providers=[Billing()]).define(mapped(2, inner=inner))
    assert code in {p.code for p in caught.value.problems}


def test_elements_interrupted_or_never_started_say_so() -> None:
    class Slow(Billing):
        async def invoke(self, call: ModelCall) -> ProviderResult:
            if call.inputs["prompt"] == "p0":
                await asyncio.sleep(5)
            return await super().invoke(call)

    (result,) = run(Slow({"p1": -1}), mapped(5, concurrency=2))
    assert not result.ok
    items = map_entry(result)["items"]
    # Element 2 may take the turn element 1 freed before the cancellation reaches it.
    assert [i["status"] for i in items] == ["cancelled", "failed", *["cancelled"] * 3]
    assert "while this element ran" in items[0]["reason"] and items[0]["latency_s"] is not None
    assert "before this element started" in items[4]["reason"] and items[4]["attempts"] == 0


def test_a_map_that_falls_back_keeps_what_its_elements_billed() -> None:
    source = mapped(3)
    source["nodes"]["each"]["on_failure"] = {"fallback": {"results": []}}
    (result,) = run(Billing({"p2": -1}), source)
    assert result.ok and result.outputs == {"texts": []}
    entry = map_entry(result)
    assert entry["status"] == "fallback" and entry["cost_usd"] == pytest.approx(2 * PRICE)
