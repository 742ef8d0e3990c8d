"""Running one workflow: dataflow order, retries, timeouts, skips, cancellation, step cache.

A node starts the moment its last dependency completes (the completing node starts it), so
independent branches overlap and a run lasts as long as its slowest path, never "layer by layer".
When a required node fails for good the run fails and every in-flight node is cancelled; when a
node is skipped, in-flight nodes that can no longer reach an output are cancelled too.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from engine.cache import CachedStep, StepCache
from engine.codec import step_key
from engine.context import NodeContext, Runtime
from engine.errors import NodeError
from engine.registry import NodeResult
from engine.spec import FallbackSpec, RetrySpec
from engine.trace import RunId, StepTrace, Trace
from engine.types import check_value
from engine.workflow import CompiledNode, Workflow

__all__ = ["RunState", "backoff_delay"]

_DEFAULT_RETRY = RetrySpec()
_FINISHED = frozenset({"succeeded", "failed", "skipped", "cancelled", "fallback"})


class _StepFailed(Exception):
    def __init__(self, error: NodeError, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def backoff_delay(policy: RetrySpec, attempt: int, rng: random.Random) -> float:
    """Delay before attempt ``attempt + 1``: exponential with "full jitter".

    Full jitter (uniform in [0, base]) spreads retries of many runs hitting the same rate limit
    apart; see M. Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
    """
    base = policy.initial_s * (2 ** (attempt - 1) if policy.backoff == "exponential" else 1)
    base = min(base, policy.max_s)
    return rng.uniform(0, base) if policy.jitter else base


class RunState:
    """The mutable state of one run. Created per run; never shared between runs."""

    def __init__(
        self,
        *,
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
        self.run_id: RunId = trace.run_id
        self.seed = seed
        self.scope: dict[str, Mapping[str, Any]] = {"inputs": inputs}
        self.waiting = {n: len(node.deps) for n, node in workflow.nodes.items()}
        self.skip_reason: dict[str, str] = {}
        self.unneeded: set[str] = set()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.remaining = len(workflow.nodes)
        self.finished = False
        self.rng = random.Random(seed)
        self.done: asyncio.Future[None] | None = None

    # -- scheduling -----------------------------------------------------------------------
    async def execute(self, deadline_s: float | None) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        for node in self.wf.nodes.values():
            if not node.deps:
                self._start(node)
        if self.remaining == 0 and not self.done.done():
            self.done.set_result(None)
        try:
            if deadline_s is None:
                await self.done
            else:
                async with asyncio.timeout(deadline_s):
                    await self.done
        except TimeoutError:
            self._fail_run(f"run deadline of {deadline_s:g}s exceeded", "deadline_exceeded")
        finally:
            self.finished = True
            pending = [t for t in self.tasks.values() if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            for step in self.trace.steps.values():
                if step.status == "pending":
                    step.status = "cancelled"
                    step.reason = step.reason or "the run ended before this step could start"

    def _start(self, node: CompiledNode) -> None:
        reason = self.skip_reason.get(node.id)
        if reason is not None:
            self._skip(node, reason)
        elif node.id in self.unneeded:
            self._skip(node, "no longer needed: nothing downstream can use it", "cancelled")
        else:
            self.tasks[node.id] = asyncio.get_running_loop().create_task(self._run_node(node))

    def _complete(self, node: CompiledNode, skipped: str | None = None) -> None:
        """Release the consumers of a finished node; ``skipped`` says why they cannot run."""
        self.remaining -= 1
        nodes = self.wf.nodes
        for consumer in node.consumers:
            if (
                skipped is not None
                and consumer not in self.skip_reason
                and node.id not in nodes[consumer].optional_deps
            ):
                self.skip_reason[consumer] = skipped
            self.waiting[consumer] -= 1
            if self.waiting[consumer] == 0 and not self.finished:
                self._start(nodes[consumer])
        if self.remaining == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _skip(self, node: CompiledNode, reason: str, status: str = "skipped") -> None:
        step = self.trace.steps[node.id]
        step.status = status  # type: ignore[assignment]
        step.reason = reason
        self._complete(node, skipped=f"upstream {node.id!r} was {status}")

    def _fail_run(self, message: str, code: str) -> None:
        if self.trace.error is None:
            self.trace.error = message
            self.trace.error_code = code
        self.trace.status = "failed"
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _prune(self) -> None:
        """After a skip, cancel in-flight nodes that no longer lead to an output.

        A node still matters when it feeds a declared output, has no consumers (it may exist
        for its side effect), or feeds a node that still matters and is not going to be skipped.
        """
        steps = self.trace.steps
        needed: set[str] = set()
        for node_id in reversed(self.wf.order):
            if steps[node_id].status in _FINISHED or node_id in self.skip_reason:
                continue
            node = self.wf.nodes[node_id]
            if (
                node_id in self.wf.output_deps
                or not node.consumers
                or any(c in needed for c in node.consumers)
            ):
                needed.add(node_id)
        for node_id in self.wf.order:
            if steps[node_id].status not in _FINISHED and node_id not in needed:
                self.unneeded.add(node_id)
                task = self.tasks.get(node_id)
                # A task that has not started yet checks `unneeded` itself when it starts;
                # cancelling it now would end it before it could report.
                if task is not None and not task.done() and steps[node_id].status == "running":
                    task.cancel()

    # -- one node -------------------------------------------------------------------------
    async def _run_node(self, node: CompiledNode) -> None:
        if node.id in self.unneeded:
            self._skip(node, "no longer needed: nothing downstream can use it", "cancelled")
            return
        step = self.trace.steps[node.id]
        step.status = "running"
        step.started = time.perf_counter()
        try:
            if node.when is not None and bool(node.when(self.scope)) == node.when_negated:
                step.ended = step.started
                self._skip(node, f"when {node.spec.when!r} is false")
                return
            await self._run_step(node, step)
        except asyncio.CancelledError:
            step.ended = time.perf_counter()
            step.status = "cancelled"
            if self.finished or node.id not in self.unneeded:
                step.reason = step.reason or "the run failed or ended"
                raise
            step.reason = "no longer needed: nothing downstream can use it"
            self._complete(node, skipped=f"upstream {node.id!r} was cancelled")
        except _StepFailed as failed:
            self._on_failure(node, step, failed)

    async def _run_step(self, node: CompiledNode, step: StepTrace) -> None:
        try:
            params = self._params(node)
        except (ValueError, KeyError) as exc:
            raise _StepFailed(NodeError(f"bad input: {exc}", code="bad_input"), 0) from None
        key = None
        shared = node.cache
        if self.cache is not None:
            key = step_key(self.wf.digest, node.id, self._key_params(node, params))
            hit = await self.cache.get(f"run:{self.run_id}:{key}")
            if hit is None and shared is not None:
                hit = await self.cache.get(f"shared:{key}")
            if hit is not None:
                self._record(node, step, hit.outputs, 0.0, hit.usage, hit.meta, hit.attempts)
                step.cache_hit = True
                step.cost_saved_usd = hit.cost_usd
                self._complete(node)
                return
        result = await self._call(node, step, node.kind.fn, params)
        outputs = self._check_outputs(node, result.outputs, step.attempts)
        self._record(node, step, outputs, result.cost_usd, result.usage, result.meta, step.attempts)
        if self.cache is not None and key is not None:
            entry = CachedStep(outputs, result.cost_usd, result.usage, result.meta, step.attempts)
            await self.cache.put(f"run:{self.run_id}:{key}", entry)
            if shared is not None:
                await self.cache.put(f"shared:{key}", entry, ttl_s=shared.ttl_s)
        self._complete(node)

    def _params(self, node: CompiledNode) -> dict[str, Any]:
        scope = self.scope
        if node.map_plan is not None:
            assert node.items is not None
            return {
                "items": node.items(scope),
                "concurrency": node.map_plan.concurrency,
                "output": node.map_plan.output,
                "run_item": self._item_runner(node),
            }
        params = dict(node.static)
        for name, resolve in node.resolvers:
            try:
                params[name] = resolve(scope)
            except KeyError:
                # Only optional parameters can read a skipped node (required ones skip the
                # node before it starts): leave the parameter out.
                if not node.optional_deps:
                    raise
        for name, vtype in node.runtime_checks:
            params[name] = check_value(params[name], vtype)
        return params

    def _key_params(self, node: CompiledNode, params: dict[str, Any]) -> dict[str, Any]:
        if node.map_plan is None:
            return params
        # The per-item parameters are only known per item; the items and every upstream value
        # the inner node can read determine them.
        return {"items": params["items"], "deps": {d: self.scope[d] for d in sorted(node.deps)}}

    def _item_runner(
        self, node: CompiledNode
    ) -> Callable[[NodeContext, int, Any], Awaitable[NodeResult]]:
        plan = node.map_plan
        assert plan is not None
        step = self.trace.steps[node.id]

        async def run_item(ctx: NodeContext, index: int, item: Any) -> NodeResult:
            scope = dict(self.scope)
            scope["item"] = {"": item}
            params = dict(plan.static)
            for name, resolve in plan.resolvers:
                params[name] = resolve(scope)
            inner = StepTrace(node=f"{node.id}[{index}]", kind=plan.kind.name)
            try:
                result = await self._call(node, inner, plan.kind.fn, params, item=index)
            finally:
                step.meta["item_attempts"] = step.meta.get("item_attempts", 0) + inner.attempts
            return result

        return run_item

    async def _call(
        self,
        node: CompiledNode,
        step: StepTrace,
        fn: Callable[[NodeContext, dict[str, Any]], Awaitable[NodeResult | dict[str, Any]]],
        params: dict[str, Any],
        item: int | None = None,
    ) -> NodeResult:
        """Call a kind with the node's timeout and retry policy."""
        policy = node.spec.retry or (_DEFAULT_RETRY if node.kind.retry_by_default else None)
        timeout = node.spec.timeout_s
        name = node.id if item is None else f"{node.id}[{item}]"
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
            except NodeError as exc:
                error = exc
            except TimeoutError:
                error = NodeError(f"timed out after {timeout:g}s", retryable=True, code="timeout")
            except _StepFailed as exc:  # a map item that failed for good
                raise _StepFailed(exc.error, attempt) from None
            except Exception as exc:  # a bug in a kind must not crash the engine or the run list
                error = NodeError(f"{type(exc).__name__}: {exc}", code="internal_error")
            if not error.retryable or policy is None or attempt >= policy.max_attempts:
                raise _StepFailed(error, attempt)
            await asyncio.sleep(backoff_delay(policy, attempt, self.rng))

    def _check_outputs(
        self, node: CompiledNode, outputs: dict[str, Any], attempts: int
    ) -> dict[str, Any]:
        checked = {}
        try:
            for name, vtype in node.kind.outputs.items():
                checked[name] = check_value(outputs[name], vtype)
        except KeyError as exc:
            error = NodeError(f"{node.kind.name} returned no output {exc}", code="bad_output")
            raise _StepFailed(error, attempts) from None
        except ValueError as exc:
            error = NodeError(f"{node.kind.name} output: {exc}", code="bad_output")
            raise _StepFailed(error, attempts) from None
        return checked

    def _record(
        self,
        node: CompiledNode,
        step: StepTrace,
        outputs: dict[str, Any],
        cost: float,
        usage: dict[str, float],
        meta: dict[str, Any],
        attempts: int,
    ) -> None:
        self.scope[node.id] = outputs
        step.ended = time.perf_counter()
        step.status = "succeeded"
        step.cost_usd = cost
        step.attempts = attempts
        if usage:
            step.usage = usage
        if meta:
            step.meta.update(meta)

    def _on_failure(self, node: CompiledNode, step: StepTrace, failed: _StepFailed) -> None:
        step.ended = time.perf_counter()
        step.attempts = failed.attempts
        step.error = str(failed.error)
        step.error_code = failed.error.code
        policy = node.spec.on_failure
        if isinstance(policy, FallbackSpec):
            step.status = "fallback"
            outputs = {name: None for name in node.kind.outputs}
            outputs.update(policy.fallback)
            self.scope[node.id] = outputs
            self._complete(node)
        elif policy == "skip":
            step.status = "failed"
            step.reason = "on_failure: skip; its dependents are skipped"
            self._complete(node, skipped=f"upstream {node.id!r} failed")
            self._prune()
        else:
            step.status = "failed"
            self._fail_run(f"node {node.id!r} failed: {failed.error}", failed.error.code)

    def outputs(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, resolve, literal in self.wf.outputs:
            if resolve is None:
                values[name] = literal
                continue
            try:
                values[name] = resolve(self.scope)
            except KeyError:  # it reads a node that was skipped
                values[name] = None
        return values
