"""``RunSteps`` and ``SharedSteps``, the step cache a served run hands the engine.

What ``control_plane.runs.steps`` promises, checked with the real engine running a three-step
graph (``first`` → ``second`` → ``third``, where ``third`` fails while the test says so) and, for
the scale-out part, the machine's Redis under a key prefix of the test's own:

* a run's completed steps are kept in memory (``new``, keyed without the run scope), a resume
  is served the steps the store saved, and each run sees only its own steps;
* a sync run hands the store nothing while it runs; an async run hands each step to ``persist``
  as it completes; ``to_keep`` says what a finished run stores;
* ``shared:`` entries go to the process's LRU (bounded, with expiry) and, with Redis, to Redis
  as well, where another process reads them on a local miss;
* with Redis, a queued run's steps are in Redis before the engine goes on (a worker that takes
  the run over resumes from them), and when Redis is away the local cache and ``persist`` take
  over: the run does not fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

import engine
from control_plane.runs.remote_steps import RemoteSteps
from control_plane.runs.steps import RunSteps, SharedSteps
from control_plane.store.redis import RedisLink
from engine import CachedStep
from tests.fixtures import REDIS_URL
from tests.processes import free_port

T = TypeVar("T")

GRAPH: dict[str, Any] = {
    "name": "three",
    "inputs": {"topic": "text"},
    "nodes": {
        "first": {"uses": "t.step", "with": {"x": "${inputs.topic}"}},
        "second": {"uses": "t.step", "with": {"x": "${first.out}"}},
        "third": {"uses": "t.step", "with": {"x": "${second.out}"}},
    },
    "outputs": {"result": "${third.out}"},
}
SHARED_GRAPH: dict[str, Any] = {
    "name": "shared",
    "inputs": {"topic": "text"},
    "nodes": {"first": {"uses": "t.step", "with": {"x": "${inputs.topic}"}, "cache": {}}},
    "outputs": {"result": "${first.out}"},
}
INPUTS = {"topic": "shoes"}
STEP = CachedStep({"out": "saved"}, cost_usd=0.5, usage={"tokens": 3.0}, attempts=2)


class Kind:
    """``t.step``: counts its calls by node, fails at ``third`` while ``broken``, and calls
    ``before`` (the test's look at the cache) at the start of each call."""

    def __init__(self) -> None:
        self.broken = True
        self.calls: list[str] = []
        self.before: Callable[[str], Awaitable[None]] | None = None

    async def __call__(self, ctx: engine.NodeContext, params: dict[str, Any]) -> engine.NodeResult:
        if self.before is not None:
            await self.before(ctx.node)
        self.calls.append(ctx.node)
        if self.broken and ctx.node == "third":
            raise engine.NodeError("third is down", retryable=False)
        return engine.NodeResult({"out": f"{ctx.node}({params['x']})"}, cost_usd=0.01)

    def node_kinds(self) -> engine.NodeKinds:
        reg = engine.NodeKinds(load_entry_points=False)
        engine.node_kind("t.step", inputs={"x": "json"}, outputs={"out": "json"}, kinds=reg)(self)
        return reg


async def run(
    kind: Kind,
    steps: RunSteps,
    *,
    graph: dict[str, Any] = GRAPH,
    run_id: str | None = None,
    resumed: bool = False,
) -> engine.RunResult:
    async with engine.Engine(kinds=kind.node_kinds(), providers=[]) as eng:
        return await eng.run(graph, INPUTS, cache=steps, run_id=run_id, resumed=resumed)


def served(result: engine.RunResult) -> list[str]:
    """The nodes the run took from the cache instead of executing."""
    return sorted(s.node for s in result.trace.steps.values() if s.cache_hit)


def decoded(steps: dict[str, str]) -> list[dict[str, Any]]:
    return sorted((CachedStep.decode(v).outputs for v in steps.values()), key=str)


# -- a run's own steps -------------------------------------------------------------------------
def test_a_failed_sync_run_keeps_its_steps_in_memory_and_its_resume_is_served_them() -> None:
    kind = Kind()
    shared = SharedSteps()
    steps = RunSteps(shared)
    failed = asyncio.run(run(kind, steps))
    assert failed.status == "failed" and kind.calls == ["first", "second", "third"]
    # The completed steps, keyed without the run's scope (the run id is the store row's).
    assert decoded(steps.new) == [{"out": "first(shoes)"}, {"out": "second(first(shoes))"}]
    assert not any(key.startswith("run:") for key in steps.new)
    assert not steps.persisted
    assert steps.to_keep(failed) == steps.new  # nothing was stored as it completed

    # The resume: what the store saved is served, only the failed step runs again.
    kind.broken, kind.calls = False, []
    again = RunSteps(shared, saved=steps.to_keep(failed))
    resumed = asyncio.run(run(kind, again, run_id=failed.run_id, resumed=True))
    assert resumed.ok and resumed.outputs == {"result": "third(second(first(shoes)))"}
    assert kind.calls == ["third"]
    assert served(resumed) == ["first", "second"]
    assert decoded(again.new) == [{"out": "third(second(first(shoes)))"}]  # this attempt's only
    assert again.to_keep(resumed) == {}  # a succeeded run has nothing left to resume


def test_a_taken_over_run_that_fails_keeps_the_steps_it_was_given_for_its_resume() -> None:
    kind = Kind()
    first = asyncio.run(run(kind, RunSteps(SharedSteps())))
    # What a dead process left in Redis: its first two steps. The run that took it over
    # fails at the third as well.
    carried = RunSteps(SharedSteps())
    asyncio.run(run(kind, carried))
    kind.calls = []
    takeover = RunSteps(SharedSteps(), saved=carried.new)
    failed = asyncio.run(run(kind, takeover, run_id=first.run_id, resumed=True))
    assert failed.status == "failed" and kind.calls == ["third"]
    assert takeover.new == {}  # it completed nothing itself
    assert takeover.to_keep(failed) == carried.new  # but the store gets what it went on from

    kind.broken, kind.calls = False, []
    again = RunSteps(SharedSteps(), saved=takeover.to_keep(failed))
    resumed = asyncio.run(run(kind, again, run_id=first.run_id, resumed=True))
    assert resumed.ok and kind.calls == ["third"]  # the carried steps are not executed again


def test_saved_steps_are_served_and_new_ones_recorded_under_the_runs_scope_only() -> None:
    async def main() -> None:
        shared = SharedSteps()
        steps = RunSteps(shared, saved={"k1": STEP.encode()})
        assert await steps.get("run:r1:k1") == STEP
        assert await steps.get("run:r1:k2") is None
        new = CachedStep({"out": "new"})
        await steps.put("run:r1:k2", new)
        assert await steps.get("run:r1:k2") == new
        assert steps.new == {"k2": new.encode()}
        # Keys outside both scopes are neither stored nor served.
        await steps.put("other:k3", new)
        assert await steps.get("other:k3") is None
        assert set(steps.new) == {"k2"}
        # Another run in the process shares the process's shared steps, never a run's own.
        other = RunSteps(shared)
        assert await other.get("run:r1:k2") is None
        assert len(shared) == 0

    asyncio.run(main())


def test_an_async_run_hands_each_step_to_persist_as_it_completes() -> None:
    kind = Kind()
    handed: list[tuple[str, str]] = []
    seen_before: dict[str, int] = {}

    async def look(node: str) -> None:
        seen_before[node] = len(handed)

    kind.before = look
    steps = RunSteps(SharedSteps(), persist=lambda key, value: handed.append((key, value)))
    failed = asyncio.run(run(kind, steps))
    assert failed.status == "failed"
    # Each step was handed over before the next one started: a crash loses no completed step.
    assert seen_before == {"first": 0, "second": 1, "third": 2}
    assert dict(handed) == steps.new
    assert steps.persisted
    assert steps.to_keep(failed) == {}  # already in the store


def test_a_sync_run_hands_the_store_nothing_while_it_runs() -> None:
    kind = Kind()
    kind.broken = False
    steps = RunSteps(SharedSteps())
    assert asyncio.run(run(kind, steps)).ok
    assert not steps.persisted and len(steps.new) == 3


# -- shared steps ------------------------------------------------------------------------------
def test_shared_steps_serve_other_runs_of_the_process_until_they_expire() -> None:
    kind = Kind()
    shared = SharedSteps()
    first = asyncio.run(run(kind, RunSteps(shared), graph=SHARED_GRAPH))
    second = asyncio.run(run(kind, RunSteps(shared), graph=SHARED_GRAPH))
    assert first.ok and second.ok
    assert kind.calls == ["first"] and served(second) == ["first"]

    async def expiry() -> None:
        steps = RunSteps(shared)
        await steps.put("shared:for-now", STEP, ttl_s=0)
        assert await steps.get("shared:for-now") is None
        await steps.put("shared:for-ever", STEP, ttl_s=None)
        assert await steps.get("shared:for-ever") == STEP

    asyncio.run(expiry())


def test_shared_steps_drop_the_least_recently_used_beyond_their_bound() -> None:
    shared = SharedSteps(max_entries=2)
    shared.put("shared:a", STEP, None)
    shared.put("shared:b", STEP, None)
    assert shared.get("shared:a") == STEP  # a is now more recent than b
    shared.put("shared:c", STEP, None)
    assert len(shared) == 2
    assert shared.get("shared:b") is None
    assert shared.get("shared:a") == STEP and shared.get("shared:c") == STEP


# -- with Redis --------------------------------------------------------------------------------
@asynccontextmanager
async def remote_steps(url: str, prefix: str) -> AsyncIterator[RemoteSteps]:
    link = RedisLink(url, prefix=prefix, timeout_s=0.5, retry_s=30.0)
    try:
        yield RemoteSteps(link)
    finally:
        await link.aclose()


def with_remote(prefix: str, body: Callable[[RemoteSteps], Awaitable[T]]) -> T:
    async def main() -> T:
        async with remote_steps(REDIS_URL, prefix) as remote:
            return await body(remote)

    return asyncio.run(main())


def test_a_queued_runs_steps_are_in_redis_before_the_engine_goes_on(redis_prefix: str) -> None:
    kind = Kind()
    handed: list[str] = []
    in_redis: dict[str, set[str]] = {}

    async def body(remote: RemoteSteps) -> None:
        async def look(node: str) -> None:
            loaded = await remote.load("run-1")
            in_redis[node] = {CachedStep.decode(v).outputs["out"] for v in loaded.values()}

        kind.before = look
        steps = RunSteps(
            SharedSteps(),
            persist=lambda key, value: handed.append(key),
            remote=remote,
            run_id="run-1",
        )
        failed = await run(kind, steps, run_id="run-1")
        assert failed.status == "failed"
        assert in_redis == {
            "first": set(),
            "second": {"first(shoes)"},
            "third": {"first(shoes)", "second(first(shoes))"},
        }
        assert handed == []  # Redis took them: the store is not written per step
        # So a failed run stores them all when it ends.
        assert not steps.persisted and steps.to_keep(failed) == steps.new

        # Another worker takes the run over from what Redis holds.
        kind.broken, kind.calls, kind.before = False, [], None
        saved = await remote.load("run-1")
        assert saved == steps.new
        takeover = RunSteps(SharedSteps(), saved=saved, remote=remote, run_id="run-1")
        resumed = await run(kind, takeover, run_id="run-1", resumed=True)
        assert resumed.ok and kind.calls == ["third"]
        assert served(resumed) == ["first", "second"]

    with_remote(redis_prefix, body)


def test_a_run_without_a_run_id_keeps_its_steps_out_of_redis(redis_prefix: str) -> None:
    async def body(remote: RemoteSteps) -> None:
        steps = RunSteps(SharedSteps(), remote=remote)  # a sync run
        await steps.put("run:sync-1:k", STEP)
        assert await remote.link.client.keys(remote.link.key("*")) == []
        assert steps.new == {"k": STEP.encode()}

    with_remote(redis_prefix, body)


def test_shared_steps_are_read_through_from_redis_by_another_process(redis_prefix: str) -> None:
    kind = Kind()

    async def body(remote: RemoteSteps) -> None:
        here = RunSteps(SharedSteps(), remote=remote)
        await here.put("shared:k", STEP, ttl_s=60)
        # "Another process": its own local cache and its own link, the same Redis.
        async with remote_steps(REDIS_URL, redis_prefix) as theirs:
            there = RunSteps(SharedSteps(), remote=theirs)
            assert await there.get("shared:k") == STEP
            assert await there.get("shared:unknown") is None
            # And through the engine: a node that opted in is not executed again.
            assert (await run(kind, RunSteps(SharedSteps(), remote=remote), graph=SHARED_GRAPH)).ok
            again = await run(kind, RunSteps(SharedSteps(), remote=theirs), graph=SHARED_GRAPH)
            assert again.ok and served(again) == ["first"]
        assert kind.calls == ["first"]

    with_remote(redis_prefix, body)


def test_without_redis_the_store_and_the_local_cache_take_over() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    kind = Kind()
    kind.broken = False
    handed: list[str] = []

    async def main() -> None:
        async with remote_steps(dead, "rgtest-dead") as remote:
            shared = SharedSteps()
            steps = RunSteps(
                shared, persist=lambda key, value: handed.append(key), remote=remote, run_id="r"
            )
            result = await run(kind, steps, run_id="r")
            assert result.ok  # nothing fails for want of Redis
            assert sorted(handed) == sorted(steps.new) and len(handed) == 3
            # Shared entries: kept locally, and a local miss is a miss, not an error.
            await steps.put("shared:k", STEP, ttl_s=60)
            assert await steps.get("shared:k") == STEP and len(shared) == 1
            assert await RunSteps(SharedSteps(), remote=remote).get("shared:k") is None
            assert not remote.link.up

    asyncio.run(main())


@pytest.mark.parametrize("ttl_s", [None, 60.0])
def test_shared_entries_in_redis_carry_the_nodes_ttl(
    redis_prefix: str, ttl_s: float | None
) -> None:
    async def body(remote: RemoteSteps) -> int:
        await RunSteps(SharedSteps(), remote=remote).put("shared:t", STEP, ttl_s=ttl_s)
        pttl: int = await remote.link.client.pttl(remote.link.key("shared:t"))
        return pttl

    pttl = with_remote(redis_prefix, body)
    if ttl_s is None:
        assert pttl == -1  # no expiry
    else:
        assert 0 < pttl <= ttl_s * 1000
