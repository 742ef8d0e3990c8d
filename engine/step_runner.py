"""Running one step of a run: its parameters, the step cache, attempts, and what its trace records.

A step resolves its parameters from the values produced so far, is answered from the step cache
when it can be (a resumed run's own steps first, then the shared cache for nodes that opt in),
and otherwise calls its kind, retrying with jittered backoff under the node's retry policy and
timeout; outputs are checked against the kind's declared types before anything downstream sees
them. A step that fails for good raises ``StepFailed``; what happens next (a fallback, a skip, a
failed run) is the scheduler's decision, in ``engine.executor``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from typing import Any

from engine.budget import BudgetGuard
from engine.cache import CachedStep, StepCache
from engine.codec import step_key
from engine.context import NodeContext, Runtime
from engine.errors import NodeError, StepFailed
from engine.limits import LimitExceeded
from engine.map_steps import ItemRunner, item_name
from engine.model_chain import ModelChain, call_models
from engine.node_kinds import KindFn, NodeKind, NodeResult
from engine.ranges import Range, out_of_range
from engine.spec import RetrySpec
from engine.trace import RunId, StepTrace, Trace
from engine.types import check_value
from engine.workflow import CompiledNode, Workflow

__all__ = ["StepFailed", "StepRunner", "as_node_error", "backoff_delay"]

_now = time.perf_counter


def backoff_delay(policy: RetrySpec, attempt: int, rng: random.Random) -> float:
    """Delay before attempt ``attempt + 1``: exponential with "full jitter".

    Full jitter (uniform in [0, base]) spreads retries of many runs hitting the same rate limit
    apart; see M. Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
    """
    base = policy.initial_s * (2 ** (attempt - 1) if policy.backoff == "exponential" else 1)
    base = min(base, policy.max_s)
    return rng.uniform(0, base) if policy.jitter else base


def as_node_error(exc: Exception, timeout: float | None) -> NodeError:
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, TimeoutError):
        return NodeError(f"timed out after {timeout:g}s", retryable=True, code="timeout")
    # A bug in a kind must not crash the engine; it fails the step with what happened.
    return NodeError(f"{type(exc).__name__}: {exc}", code="internal_error")


def _enforce_ranges(checks: tuple[tuple[str, Range], ...], params: dict[str, Any]) -> None:
    """Fail the step, before its kind is called (and bills), on a value outside its range."""
    problem = out_of_range(checks, params)
    if problem is not None:
        raise StepFailed(NodeError(f"bad input: {problem}", code="out_of_range"), 0)


class StepRunner:
    """What the steps of one run share, and how any one of them runs.

    The executor's ``RunState`` extends this class rather than holding an instance: its inline
    fast path reads these attributes directly, and a run creates one object, not two.
    """

    _rng: random.Random | None = None
    guard: BudgetGuard | None = None  # the run's budget, when it has one

    def __init__(
        self,
        workflow: Workflow,
        runtime: Runtime,
        cache: StepCache | None,
        trace: Trace,
        inputs: dict[str, Any],
        seed: int,
    ) -> None:
        self.wf = workflow
        self.runtime = runtime
        self.cache = cache
        self.trace = trace
        self.steps = trace.steps
        self.run_id: RunId = trace.run_id
        self.seed = seed
        self.scope: dict[str, Mapping[str, Any]] = {"inputs": inputs}

    @property
    def rng(self) -> random.Random:
        # Only retries draw from it; seeding one costs more than a whole no-op step.
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng

    async def _run_step(self, node: CompiledNode, step: StepTrace) -> None:
        """Parameters, then the step cache, else the kind's attempts; the outcome recorded."""
        params = self._params(node)
        key = None
        if self.cache is not None:
            key = step_key(self.wf.digest, node.id, self._key_params(node, params))
            hit = None
            own = False
            if self.trace.resumed:
                hit = await self.cache.get(f"run:{self.run_id}:{key}")
                own = hit is not None
            if hit is None and node.cache is not None:
                hit = await self.cache.get(f"shared:{key}")
            if hit is not None:
                step.items = None  # the whole map came from the cache: no element ran
                # A step of this same attempt, completed by a process that stopped, was billed
                # and never reported: it is this run's cost. Any other hit is a saving.
                billed = own and self.trace.taken_over
                cost = hit.cost_usd if billed else 0.0
                if own and self.guard is not None:
                    # Billed by this run (an earlier attempt): it counts against its budget.
                    self.guard.settle(node.id, hit.cost_usd, hit.usage)
                self._record(node, step, hit.outputs, cost, hit.usage, hit.meta)
                step.attempts = hit.attempts
                step.cache_hit = True
                step.cost_saved_usd = 0.0 if billed else hit.cost_usd
                return
        guard = self.guard
        items = params.get("run_item") if node.map_plan is not None else None
        try:
            if node.fallback_models:
                result, outputs = await self._call_models(node, step, params)
            elif guard is None:
                result = await self._call(node, step, node.fn, params)
                outputs = self._check_outputs(node, result.outputs, step.attempts)
            else:
                # A map's items are admitted and settled one by one, in its item runner.
                name = None if node.map_plan is not None else node.id
                result, outputs = await self._guarded_call(guard, name, node, step, params)
        finally:
            if isinstance(items, ItemRunner):
                items.close()
        self._record(node, step, outputs, result.cost_usd, result.usage, result.meta)
        observer = self.runtime.observer
        if observer is not None:
            observer.step_content(self.run_id, node.id, params, outputs)
        if self.cache is not None and key is not None:
            entry = CachedStep(outputs, result.cost_usd, result.usage, result.meta, step.attempts)
            await self.cache.put(f"run:{self.run_id}:{key}", entry)
            if node.cache is not None:
                await self.cache.put(f"shared:{key}", entry, ttl_s=node.cache.ttl_s)

    def admit(self, guard: BudgetGuard, name: str, kind: NodeKind, params: Any) -> None:
        """Reserve a step's estimated bill, or fail it unstarted (``budget_exceeded``)."""
        try:
            guard.admit(name, kind, params)
        except NodeError as exc:
            raise StepFailed(exc, 0) from None

    async def _guarded_call(
        self,
        guard: BudgetGuard,
        name: str | None,
        node: CompiledNode,
        step: StepTrace,
        params: dict[str, Any],
    ) -> tuple[NodeResult, dict[str, Any]]:
        if name is not None:
            self.admit(guard, name, node.kind, params)
        try:
            result = await self._call(node, step, node.fn, params)
            outputs = self._check_outputs(node, result.outputs, step.attempts)
        except BaseException:
            if name is not None:
                guard.settle(name, 0.0, None)
            raise
        if name is not None:
            guard.settle(name, result.cost_usd, result.usage)
        return result, outputs

    async def _call_models(
        self, node: CompiledNode, step: StepTrace, params: dict[str, Any]
    ) -> tuple[NodeResult, dict[str, Any]]:
        """The node's model, then its fallback models (``engine.model_chain``)."""
        chain = ModelChain(str(params["model"]), node.fallback_models)

        async def call(turn: dict[str, Any]) -> tuple[NodeResult, dict[str, Any]]:
            result = await self._call(node, step, node.fn, turn, chain=chain)
            return result, self._check_outputs(node, result.outputs, step.attempts)

        guard = self.guard
        if guard is None:
            return await call_models(chain, step, params, call)
        return await call_models(
            chain,
            step,
            params,
            call,
            lambda turn: self.admit(guard, node.id, node.kind, turn),
            lambda cost, usage: guard.settle(node.id, cost, usage),
        )

    def _params(self, node: CompiledNode) -> dict[str, Any]:
        scope = self.scope
        try:
            if node.map_plan is not None:
                assert node.items is not None
                items = node.items(scope)
                limit = self.runtime.limits.max_map_items
                if isinstance(items, list) and len(items) > limit:
                    # Before the step key (which hashes every item) or any task is made.
                    raise LimitExceeded(
                        f"map has {len(items):,} items, more than the limit of {limit:,} "
                        "(ROLLGRAPH_MAX_MAP_ITEMS on a server); split the list"
                    )
                return {
                    "items": items,
                    "concurrency": node.map_plan.concurrency,
                    "output": node.map_plan.output,
                    "run_item": ItemRunner(self, node, items) if isinstance(items, list) else None,
                }
            params = dict(node.static)
            try:
                for name, source, field in node.direct:
                    params[name] = scope[source][field]
                for name, resolve in node.resolvers:
                    params[name] = resolve(scope)
            except KeyError:
                # Only optional parameters can read a skipped node (required ones skip the
                # node before it starts): resolve one by one and leave those out.
                if not node.optional_deps:
                    raise
                params = self._params_without_skipped(node)
            for name, vtype in node.runtime_checks:
                params[name] = check_value(params[name], vtype)
            if node.range_checks:
                _enforce_ranges(node.range_checks, params)
            return params
        except (ValueError, KeyError) as exc:
            raise StepFailed(NodeError(f"bad input: {exc}", code="bad_input"), 0) from None
        except LimitExceeded as exc:
            raise StepFailed(exc, 0) from None

    def _params_without_skipped(self, node: CompiledNode) -> dict[str, Any]:
        scope = self.scope
        params = dict(node.static)
        for name, source, field in node.direct:
            if source in scope:
                params[name] = scope[source][field]
        for name, resolve in node.resolvers:
            try:
                params[name] = resolve(scope)
            except KeyError:
                continue
        return params

    def _key_params(self, node: CompiledNode, params: dict[str, Any]) -> dict[str, Any]:
        if node.map_plan is None:
            return params
        # The per-item parameters are only known per item; the items and every upstream value
        # the inner node can read determine them.
        return {"items": params["items"], "deps": {d: self.scope[d] for d in sorted(node.deps)}}

    async def _call(
        self,
        node: CompiledNode,
        step: StepTrace,
        fn: KindFn,
        params: dict[str, Any],
        item: int | None = None,
        chain: ModelChain | None = None,
    ) -> NodeResult:
        """Call a kind with the node's timeout and retry policy (a map element's: its inner
        node's, ``MapPlan.policy``); ``chain`` records failures."""
        name: str = node.id
        if item is None:
            policy, timeout = node.policy, node.timeout_s
        else:
            plan = node.map_plan
            assert plan is not None
            policy, timeout, name = plan.policy, plan.timeout_s, item_name(node.id, item)
        attempt = 0
        while True:
            attempt += 1
            step.attempts = attempt
            ctx = NodeContext(self.runtime, self.run_id, name, self.seed, attempt)
            try:
                if timeout is None:
                    result = await fn(ctx, params)
                else:
                    async with asyncio.timeout(timeout):
                        result = await fn(ctx, params)
                return result if isinstance(result, NodeResult) else NodeResult(outputs=result)
            except StepFailed as exc:  # a map item that failed for good
                raise StepFailed(exc.error, attempt) from None
            except Exception as exc:
                error = as_node_error(exc, timeout)
            if chain is not None:
                chain.failed(params["model"], attempt, error)
            if not error.retryable or policy is None or attempt >= policy.max_attempts:
                raise StepFailed(error, attempt)
            delay = backoff_delay(policy, attempt, self.rng)
            observer = self.runtime.observer
            if observer is not None:
                observer.retrying(self.run_id, node.id, item, attempt, error, delay)
            await asyncio.sleep(delay)

    def _finish_result(self, node: CompiledNode, step: StepTrace, result: Any) -> None:
        """Record what a kind returned: a ``NodeResult`` or a mapping of outputs to check."""
        if isinstance(result, NodeResult):
            outputs = self._check_outputs(node, result.outputs, step.attempts)
            self._record(node, step, outputs, result.cost_usd, result.usage, result.meta)
        else:
            self._record(node, step, self._check_outputs(node, result, step.attempts), 0.0)

    def _check_outputs(
        self, node: CompiledNode, outputs: dict[str, Any], attempts: int
    ) -> dict[str, Any]:
        try:
            checked = {name: outputs[name] for name in node.output_names}
            for name, vtype in node.typed_outputs:
                checked[name] = check_value(checked[name], vtype)
        except KeyError as exc:
            error = NodeError(f"{node.kind.name} returned no output {exc}", code="bad_output")
            raise StepFailed(error, attempts) from None
        except ValueError as exc:
            error = NodeError(f"{node.kind.name} output: {exc}", code="bad_output")
            raise StepFailed(error, attempts) from None
        return checked

    def _record(
        self,
        node: CompiledNode,
        step: StepTrace,
        outputs: dict[str, Any],
        cost: float,
        usage: dict[str, float] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.scope[node.id] = outputs
        step.ended = _now()
        step.status = "succeeded"
        step.cost_usd = cost
        if usage:
            step.usage = usage
        if meta:
            step.add_meta(meta)

    def _record_failure(self, step: StepTrace, failed: StepFailed) -> None:
        step.ended = _now()
        step.attempts = failed.attempts
        step.error = str(failed.error)
        step.error_code = failed.error.code
