"""A ``map`` node's elements, each run as a step of its own.

Element ``i`` of node ``explain`` is the step ``explain[i]``: its position in ``items``, which is
also its place in the results, so the name says where to look in both. It is nested in the map's
trace entry (``items``), not beside the nodes, so a run's cost, which sums the nodes, counts it
once: through the map's entry, which adds up what its elements billed as they end, also when
the map fails.

Like any step, an element has its own trace entry (status, attempts, cost, latency, error), the
inner node's retry policy and timeout (``MapPlan.policy``), its own step-cache entry (so a resumed
run re-runs and re-bills only the elements that did not succeed) and its own admission against
the run's budget before it starts.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.budget import BUDGET_EXCEEDED
from engine.cache import CachedStep
from engine.codec import step_key
from engine.context import NodeContext
from engine.errors import NodeError, StepFailed
from engine.node_kinds import NodeResult
from engine.ranges import out_of_range
from engine.trace import StepTrace
from engine.workflow import CompiledNode, MapPlan

if TYPE_CHECKING:
    from engine.step_runner import StepRunner

__all__ = ["ItemRunner", "item_name"]

_now = time.perf_counter
_NOT_STARTED = "the map failed or stopped before this element started"
_INTERRUPTED = "the map failed or stopped while this element ran"


def item_name(node: str, index: int) -> str:
    """``node[index]``: the index is the element's place in ``items`` and in the results, and
    unlike the element's value it tells two equal elements (two calls, each billed) apart.
    ``${...}`` cannot read a name with brackets, and the entry is nested in the map's, so it
    never stands for a node."""
    return f"{node}[{index}]"


class ItemRunner:
    """Runs the elements of one map step; the map kind calls it once per element."""

    __slots__ = ("entries", "node", "plan", "runner", "step")

    def __init__(self, runner: StepRunner, node: CompiledNode, items: list[Any]) -> None:
        assert node.map_plan is not None
        self.runner = runner
        self.node = node
        self.plan: MapPlan = node.map_plan
        self.step = runner.steps[node.id]
        kind = self.plan.kind.name
        self.entries = [StepTrace(item_name(node.id, i), kind) for i in range(len(items))]
        self.step.items = self.entries

    def close(self) -> None:
        """The map ended: elements it never started (or cancelled) say so."""
        for entry in self.entries:
            if entry.status == "pending":
                entry.status = "cancelled"
                entry.reason = entry.reason or _NOT_STARTED
            elif entry.status == "running":  # interrupted: another element failed, a deadline
                entry.ended = _now()
                entry.status = "cancelled"
                # Cancelled between its turn coming and its first call: it never ran.
                entry.reason = _INTERRUPTED if entry.attempts else _NOT_STARTED

    def _params(self, item: Any) -> dict[str, Any]:
        plan = self.plan
        scope = dict(self.runner.scope)
        scope["item"] = {"": item}
        params = dict(plan.static)
        for name, resolve in plan.resolvers:
            params[name] = resolve(scope)
        return params

    async def __call__(self, ctx: NodeContext, index: int, item: Any) -> NodeResult:
        entry = self.entries[index]
        entry.status = "running"
        entry.started = _now()
        try:
            result = await self._run(entry, index, item)
        except StepFailed as failed:
            entry.ended = _now()
            entry.attempts = failed.attempts or entry.attempts
            entry.error = str(failed.error)
            entry.error_code = failed.error.code
            if failed.error.code == BUDGET_EXCEEDED:  # refused before it started, like a node
                entry.status = "cancelled"
                entry.reason = str(failed.error)
            else:
                entry.status = "failed"
            raise
        entry.ended = _now()
        entry.status = "succeeded"
        return result

    async def _run(self, entry: StepTrace, index: int, item: Any) -> NodeResult:
        runner, node, plan = self.runner, self.node, self.plan
        params = self._params(item)
        if plan.kind.ranged:
            problem = out_of_range(plan.kind.ranged, params)
            if problem is not None:
                raise StepFailed(NodeError(f"bad input: {problem}", code="out_of_range"), 0)
        cache = runner.cache
        key = None
        if cache is not None:
            # The element's name and its resolved parameters: the same element of the same
            # definition with the same inputs finds it again on a resume. Wrapped so that no
            # node literally named `explain[3]` can share its key.
            key = step_key(runner.wf.digest, entry.node, {"$map_item": params})
            hit = await self._cached(key)
            if hit is not None:
                return self._from_cache(entry, hit)
        guard = runner.guard
        if guard is not None:
            runner.admit(guard, entry.node, plan.kind, params)
        billed = 0.0
        usage = None
        try:
            result = await runner._call(node, entry, plan.kind.fn, params, item=index)
            billed, usage = result.cost_usd, result.usage
        finally:
            if guard is not None:
                guard.settle(entry.node, billed, usage)
            attempts = self.step.meta.get("item_attempts", 0) + entry.attempts
            self.step.add_meta({"item_attempts": attempts})
        entry.cost_usd = billed
        if usage:
            entry.usage = usage
        self.step.cost_usd += billed  # the map's entry holds what it billed, even if it fails
        if cache is not None and key is not None:
            stored = CachedStep(result.outputs, billed, result.usage, result.meta, entry.attempts)
            await cache.put(f"run:{runner.run_id}:{key}", stored)
            if node.cache is not None:
                await cache.put(f"shared:{key}", stored, ttl_s=node.cache.ttl_s)
        return result

    async def _cached(self, key: str) -> tuple[CachedStep, bool] | None:
        runner = self.runner
        assert runner.cache is not None
        if runner.trace.resumed:
            hit = await runner.cache.get(f"run:{runner.run_id}:{key}")
            if hit is not None:
                return hit, True
        if self.node.cache is not None:
            hit = await runner.cache.get(f"shared:{key}")
            if hit is not None:
                return hit, False
        return None

    def _from_cache(self, entry: StepTrace, found: tuple[CachedStep, bool]) -> NodeResult:
        """An element completed before: by this run's earlier attempt (billed then; a saving
        now, unless this attempt is the same one taken over) or by the shared cache."""
        hit, own = found
        runner = self.runner
        billed = own and runner.trace.taken_over
        cost = hit.cost_usd if billed else 0.0
        if own and runner.guard is not None:
            runner.guard.settle(entry.node, hit.cost_usd, hit.usage)
        entry.attempts = hit.attempts
        entry.cache_hit = True
        entry.cost_usd = cost
        entry.cost_saved_usd = 0.0 if billed else hit.cost_usd
        if hit.usage:
            entry.usage = hit.usage
        self.step.cost_usd += cost
        self.step.cost_saved_usd += entry.cost_saved_usd
        return NodeResult(outputs=hit.outputs, cost_usd=cost, usage=hit.usage, meta=hit.meta)
