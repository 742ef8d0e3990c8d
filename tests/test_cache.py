"""The step cache: backends, resume without re-running or re-billing, opt-in sharing across runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.cache import CachedStep
from tests.fixtures import example

MEDIA = engine.MediaRef("video", "s3://b/v.mp4", mime="video/mp4", duration_s=8.0)


def backends(tmp_path: Path) -> list[engine.StepCache]:
    return [engine.MemoryStepCache(), engine.SQLiteStepCache(tmp_path / "steps.db")]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_backends_round_trip_values_media_and_expiry(tmp_path: Path, kind: str) -> None:
    async def go() -> None:
        cache = backends(tmp_path)[0 if kind == "memory" else 1]
        step = CachedStep(
            {"video": MEDIA, "n": [1, 2.5, "x"]}, 0.4, {"media_seconds": 8.0}, {"q": 0.9}, 2
        )
        await cache.put("k", step)
        assert await cache.get("k") == step
        assert await cache.get("missing") is None
        await cache.put("short", step, ttl_s=0.01)
        await asyncio.sleep(0.03)
        assert await cache.get("short") is None
        await cache.aclose()

    asyncio.run(go())


def test_sqlite_cache_purges_expired_entries_only(tmp_path: Path) -> None:
    async def go() -> int:
        cache = engine.SQLiteStepCache(tmp_path / "p.db")
        await cache.put("old", CachedStep({"text": "a"}), ttl_s=0.01)
        await cache.put("kept", CachedStep({"text": "b"}), ttl_s=60)
        await cache.put("forever", CachedStep({"text": "c"}))
        await asyncio.sleep(0.03)
        purged = await cache.purge_expired()
        assert await cache.get("kept") is not None
        assert await cache.get("forever") is not None
        await cache.aclose()
        return purged

    assert asyncio.run(go()) == 1


def test_sqlite_cache_survives_a_new_process_handle(tmp_path: Path) -> None:
    async def go() -> None:
        first = engine.SQLiteStepCache(tmp_path / "s.db")
        await first.put("k", CachedStep({"text": "hi"}, 0.1))
        await first.aclose()
        second = engine.SQLiteStepCache(tmp_path / "s.db")
        hit = await second.get("k")
        await second.aclose()
        assert hit is not None and hit.outputs == {"text": "hi"}

    asyncio.run(go())


class Switch:
    """A node kind that fails (non-retryably) while ``broken`` is set, counting executions."""

    def __init__(self) -> None:
        self.broken = True
        self.calls: list[str] = []

    async def __call__(self, ctx: engine.NodeContext, p: dict[str, Any]) -> engine.NodeResult:
        self.calls.append(ctx.node)
        if self.broken and ctx.node == "compose":
            raise engine.NodeError("compose service down")
        return engine.NodeResult({"out": f"{ctx.node}({p.get('x')},{p.get('y')})"}, cost_usd=1.0)


SPEC: dict[str, Any] = {
    "name": "resumable",
    "inputs": {"prompt": "text"},
    "nodes": {
        "enhance": {"uses": "t.step", "with": {"x": "${inputs.prompt}"}},
        "video": {"uses": "t.step", "with": {"x": "${enhance.out}"}},
        "voice": {"uses": "t.step", "with": {"x": "${enhance.out}"}},
        "compose": {"uses": "t.step", "with": {"x": "${video.out}", "y": "${voice.out}"}},
    },
    "outputs": {"cut": "${compose.out}"},
}


def registry_with(switch: Switch) -> engine.NodeKinds:
    reg = engine.NodeKinds(load_entry_points=False)
    engine.node_kind(
        "t.step",
        inputs={"x": "json", "y": engine.Param.optional("json")},
        outputs={"out": "json"},
        kinds=reg,
    )(switch)
    return reg


def test_step_3_of_4_fails_and_the_resume_neither_reruns_nor_rebills_steps_1_and_2(
    tmp_path: Path,
) -> None:
    switch = Switch()
    reg = registry_with(switch)
    db = tmp_path / "steps.db"

    async def first() -> engine.RunResult:
        async with engine.Engine(kinds=reg, providers=[], cache=engine.SQLiteStepCache(db)) as eng:
            return await eng.run(SPEC, {"prompt": "sneaker"})

    failed = asyncio.run(first())
    assert failed.status == "failed"
    assert sorted(switch.calls) == ["compose", "enhance", "video", "voice"]
    assert failed.trace.cost_usd == 3.0  # the failed step is not billed

    # A new engine and a new cache handle: the resume works after a restart, too.
    switch.broken = False
    switch.calls.clear()

    async def resume() -> engine.RunResult:
        async with engine.Engine(kinds=reg, providers=[], cache=engine.SQLiteStepCache(db)) as eng:
            return await eng.resume(SPEC, failed.run_id, {"prompt": "sneaker"})

    resumed = asyncio.run(resume())
    assert resumed.ok and resumed.run_id == failed.run_id and resumed.trace.resumed
    assert switch.calls == ["compose"]
    steps = {s.node: s for s in resumed.trace.steps.values()}
    assert [n for n, s in steps.items() if s.cache_hit] == ["enhance", "video", "voice"]
    assert all(
        steps[n].cost_usd == 0 and steps[n].cost_saved_usd == 1.0
        for n in ("enhance", "video", "voice")
    )
    assert resumed.trace.cost_usd == 1.0 and resumed.trace.cost_saved_usd == 3.0
    assert resumed.outputs == {
        "cut": "compose(video(enhance(sneaker,None),None),voice(enhance(sneaker,None),None))"
    }


def test_a_new_run_does_not_reuse_another_runs_steps_unless_the_node_opts_in() -> None:
    switch = Switch()
    switch.broken = False
    reg = registry_with(switch)
    shared = {
        **SPEC,
        "nodes": {**SPEC["nodes"], "enhance": {**SPEC["nodes"]["enhance"], "cache": {"ttl_s": 60}}},
    }

    async def go() -> list[engine.RunResult]:
        async with engine.Engine(kinds=reg, providers=[], cache=engine.MemoryStepCache()) as eng:
            return [
                await eng.run(SPEC, {"prompt": "a"}),
                await eng.run(SPEC, {"prompt": "a"}),
                await eng.run(shared, {"prompt": "a"}),
                await eng.run(shared, {"prompt": "a"}),
                await eng.run(shared, {"prompt": "b"}),
            ]

    runs = asyncio.run(go())
    hits = [[s.node for s in r.trace.steps.values() if s.cache_hit] for r in runs]
    assert hits == [[], [], [], ["enhance"], []]
    assert switch.calls.count("enhance") == 4


def test_resume_without_a_cache_is_refused() -> None:
    async def go() -> None:
        async with engine.Engine(providers=[]) as eng:
            await eng.resume(
                {"name": "x", "nodes": {"a": {"uses": "template", "with": {"text": "t"}}}}, "r1"
            )

    with pytest.raises(engine.RunError, match="needs a step cache"):
        asyncio.run(go())


def test_resume_of_a_simulated_product_video_reproduces_outputs(tmp_path: Path) -> None:
    source = example("v3.2")

    async def go() -> tuple[engine.RunResult, engine.RunResult]:
        sim = engine.providers.SimProvider(time_scale=0)
        async with engine.Engine(
            providers=[sim], cache=engine.SQLiteStepCache(tmp_path / "s.db")
        ) as eng:
            first = await eng.run(source, {"prompt": "lamp"})
            again = await eng.resume(source, first.run_id, {"prompt": "lamp"})
            return first, again

    first, again = asyncio.run(go())
    assert first.ok and again.ok
    assert again.outputs == first.outputs
    assert again.trace.cost_usd == 0 and again.trace.cost_saved_usd == pytest.approx(
        first.trace.cost_usd
    )


def test_a_run_taken_over_mid_attempt_counts_the_steps_it_carries_as_cost_once(
    tmp_path: Path,
) -> None:
    # A process ran three steps of an attempt and stopped before reporting it; another goes on
    # under the same run id. The three were billed by the first process, so they are this
    # run's cost (not savings), and only the fourth executes again.
    switch = Switch()
    reg = registry_with(switch)
    db = tmp_path / "steps.db"

    async def first() -> engine.RunResult:
        async with engine.Engine(kinds=reg, providers=[], cache=engine.SQLiteStepCache(db)) as eng:
            return await eng.run(SPEC, {"prompt": "sneaker"})

    stopped = asyncio.run(first())
    switch.broken = False
    switch.calls.clear()

    async def take_over() -> engine.RunResult:
        async with engine.Engine(kinds=reg, providers=[], cache=engine.SQLiteStepCache(db)) as eng:
            return await eng.run(
                SPEC, {"prompt": "sneaker"}, run_id=stopped.run_id, taken_over=True
            )

    taken = asyncio.run(take_over())
    assert taken.ok and taken.trace.taken_over and taken.trace.to_json()["taken_over"] is True
    assert switch.calls == ["compose"]
    steps = {s.node: s for s in taken.trace.steps.values()}
    carried = [n for n, s in steps.items() if s.cache_hit]
    assert carried == ["enhance", "video", "voice"]
    assert all(steps[n].cost_usd == 1.0 and steps[n].cost_saved_usd == 0 for n in carried)
    assert taken.trace.cost_usd == 4.0 and taken.trace.cost_saved_usd == 0
