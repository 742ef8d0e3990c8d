"""Running one workflow: dataflow order, retries, timeouts, skips, cancellation, step cache.

A node starts the moment its last dependency completes, so independent branches overlap and a
run lasts as long as its slowest path, never "layer by layer". Scheduling works in chains: the
task that finishes a node goes straight on with one of the consumers that became ready and
spawns tasks only for the others, so a chain of steps costs one task, not one per step.

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
from engine.registry import KindFn, NodeResult
from engine.spec import FallbackSpec, RetrySpec
from engine.trace import RunId, StepStatus, StepTrace, Trace
from engine.types import check_value
from engine.workflow import CompiledNode, Workflow

__all__ = ["RunState", "backoff_delay"]

_now = time.perf_counter
_FINISHED = frozenset({"succeeded", "failed", "skipped", "cancelled", "fallback"})
_UNNEEDED = "no longer needed: nothing downstream can use it"


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


def _as_node_error(exc: Exception, timeout: float | None) -> NodeError:
    if isinstance(exc, NodeError):
        return exc
    if isinstance(exc, TimeoutError):
        return NodeError(f"timed out after {timeout:g}s", retryable=True, code="timeout")
    # A bug in a kind must not crash the engine; it fails the step with what happened.
    return NodeError(f"{type(exc).__name__}: {exc}", code="internal_error")


class RunState:
    """The mutable state of one run. Created per run; never shared between runs."""

    # Defaults on the class: a run only writes the attributes it changes.
    stopped = False  # the run failed or ended: start nothing more
    done: asyncio.Future[None] | None = None
    _rng: random.Random | None = None

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
        self.waiting = workflow.waiting.copy()
        self.skip_reason: dict[str, str] = {}
        self.unneeded: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.owner: dict[str, asyncio.Task[Any]] = {}  # running node → the task running it
        self.remaining = len(workflow.nodes)
        self.loop: asyncio.AbstractEventLoop

    @property
    def rng(self) -> random.Random:
        # Only retries draw from it; seeding one costs more than a whole no-op step.
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng

    # -- scheduling -----------------------------------------------------------------------
    async def execute(self, deadline_s: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        first = self._advance(list(self.wf.root_nodes))
        try:
            if deadline_s is None:
                await self._drive(first)
            else:
                async with asyncio.timeout(deadline_s):
                    await self._drive(first)
        except TimeoutError:
            self._fail_run(f"run deadline of {deadline_s:g}s exceeded", "deadline_exceeded")
        finally:
            self.stopped = True
            pending = [t for t in self.tasks if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            if self.remaining:
                for step in self.steps.values():
                    if step.status == "pending":
                        step.status = "cancelled"
                        step.reason = step.reason or "the run ended before this step could start"

    async def _drive(self, first: CompiledNode | None) -> None:
        """Run the first chain in the caller's task, then wait for the spawned ones."""
        await self._chain(first)
        if self.remaining and not self.stopped:
            self.done = self.loop.create_future()
            await self.done

    async def _chain(self, node: CompiledNode | None) -> None:
        """Run steps one after another in this task: each step hands on the next ready node.

        The common step (no condition, fan-out, retry, timeout or cache) is inline here rather
        than in a coroutine of its own, so it costs little more than one call of its kind.
        """
        track = self.wf.may_prune
        task = asyncio.current_task() if track else None
        steps = self.steps
        scope = self.scope
        fast = self.cache is None
        try:
            while node is not None and not self.stopped:
                if node.id in self.unneeded:  # pruned while it waited for its turn
                    node = self._advance(self._finish_skipped(node, _UNNEEDED, "cancelled"))
                    continue
                step = steps[node.id]
                step.status = "running"
                step.started = _now()
                if task is not None:
                    self.owner[node.id] = task
                try:
                    if fast and node.plain:
                        if node.direct_only:
                            params = dict(node.static)
                            for name, source, field in node.direct:
                                params[name] = scope[source][field]
                        else:
                            params = self._params(node)
                        step.attempts = 1
                        try:
                            result = await node.fn(
                                NodeContext(self.runtime, self.run_id, node.id, self.seed, 1),
                                params,
                            )
                        except Exception as exc:
                            raise _StepFailed(_as_node_error(exc, None), 1) from None
                        if type(result) is dict and result.keys() == node.unchecked_keys:
                            # Exactly the declared json outputs: nothing to check or drop.
                            scope[node.id] = result
                            step.ended = _now()
                            step.status = "succeeded"
                        else:
                            self._finish_result(node, step, result)
                        ready = self._release(node)
                    else:
                        ready = await self._step(node, step)
                except asyncio.CancelledError:
                    step.ended = _now()
                    step.status = "cancelled"
                    if self.stopped or node.id not in self.unneeded:
                        step.reason = step.reason or "the run failed or ended"
                        raise
                    # Pruned: this task was cancelled for this node only; carry on with the run.
                    assert task is not None  # pruning happens only where `track` holds
                    task.uncancel()
                    step.reason = _UNNEEDED
                    ready = self._release(node, skipped=f"upstream {node.id!r} was cancelled")
                except _StepFailed as failed:
                    ready = self._on_failure(node, step, failed)
                node = self._advance(ready)
        except Exception as exc:
            # An engine bug: fail the run rather than leave it waiting for this chain forever.
            self._fail_run(f"internal error in the engine: {exc!r}", "internal_error")
            raise

    async def _step(self, node: CompiledNode, step: StepTrace) -> list[CompiledNode]:
        """Any step: its condition, then parameters, cache, retries and timeout."""
        if node.when is not None and bool(node.when(self.scope)) == node.when_negated:
            step.ended = step.started
            return self._finish_skipped(node, f"when {node.spec.when!r} is false", "skipped")
        return await self._full_step(node, step)

    def _finish_result(self, node: CompiledNode, step: StepTrace, result: Any) -> None:
        """Record what a kind returned: a ``NodeResult`` or a mapping of outputs to check."""
        if isinstance(result, NodeResult):
            outputs = self._check_outputs(node, result.outputs, step.attempts)
            self._record(node, step, outputs, result.cost_usd, result.usage, result.meta)
        else:
            self._record(node, step, self._check_outputs(node, result, step.attempts), 0.0)

    def _advance(self, ready: list[CompiledNode]) -> CompiledNode | None:
        """Start what became ready: skip what must be skipped, spawn a task for all but one,
        and hand that one back for the calling task to run itself."""
        if not ready or self.stopped:
            return None
        if not self.skip_reason and not self.unneeded:  # nothing to skip: the common case
            for node in ready[:-1]:
                self._spawn(node)
            return ready[-1]
        keep: CompiledNode | None = None
        while ready and not self.stopped:
            node = ready.pop()
            reason = self.skip_reason.get(node.id)
            if reason is not None:
                ready.extend(self._finish_skipped(node, reason, "skipped"))
            elif node.id in self.unneeded:
                ready.extend(self._finish_skipped(node, _UNNEEDED, "cancelled"))
            elif keep is None:
                keep = node
            else:
                self._spawn(node)
        return keep

    def _spawn(self, node: CompiledNode) -> None:
        self.tasks.append(self.loop.create_task(self._chain(node)))

    def _release(self, node: CompiledNode, skipped: str | None = None) -> list[CompiledNode]:
        """Count a node finished; return its consumers that are now ready.

        ``skipped`` says why consumers that need this node through a required parameter cannot
        run; consumers that read it only through optional parameters run without it.
        """
        self.remaining -= 1
        if skipped is not None:
            for consumer_id, consumer in node.consumer_pairs:
                if consumer_id not in self.skip_reason and node.id not in consumer.optional_deps:
                    self.skip_reason[consumer_id] = skipped
        ready = []
        waiting = self.waiting
        for consumer_id, consumer in node.consumer_pairs:
            left = waiting[consumer_id] - 1
            waiting[consumer_id] = left
            if not left:
                ready.append(consumer)
        if self.remaining == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)
        return ready

    def _finish_skipped(
        self, node: CompiledNode, reason: str, status: StepStatus
    ) -> list[CompiledNode]:
        step = self.steps[node.id]
        step.status = status
        step.reason = reason
        return self._release(node, skipped=f"upstream {node.id!r} was {status}")

    def _fail_run(self, message: str, code: str) -> None:
        if self.trace.error is None:
            self.trace.error = message
            self.trace.error_code = code
        self.trace.status = "failed"
        self.stopped = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def _prune(self) -> None:
        """After a skip, cancel in-flight nodes that no longer lead to an output.

        A node still matters when it feeds a declared output, has no consumers (it may exist
        for its side effect), or feeds a node that still matters and is not going to be skipped.
        """
        steps = self.steps
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
        current = asyncio.current_task()
        for node_id in self.wf.order:
            if steps[node_id].status in _FINISHED or node_id in needed:
                continue
            self.unneeded.add(node_id)
            # A node that has not started checks `unneeded` when its turn comes; a running one
            # is interrupted in the task that runs it (never this one: it is finishing a step).
            task = self.owner.get(node_id)
            if steps[node_id].status == "running" and task is not None and task is not current:
                task.cancel()

    # -- one node -------------------------------------------------------------------------
    async def _full_step(self, node: CompiledNode, step: StepTrace) -> list[CompiledNode]:
        params = self._params(node)
        key = None
        if self.cache is not None:
            key = step_key(self.wf.digest, node.id, self._key_params(node, params))
            hit = None
            if self.trace.resumed:
                hit = await self.cache.get(f"run:{self.run_id}:{key}")
            if hit is None and node.cache is not None:
                hit = await self.cache.get(f"shared:{key}")
            if hit is not None:
                self._record(node, step, hit.outputs, 0.0, hit.usage, hit.meta)
                step.attempts = hit.attempts
                step.cache_hit = True
                step.cost_saved_usd = hit.cost_usd
                return self._release(node)
        result = await self._call(node, step, node.fn, params)
        outputs = self._check_outputs(node, result.outputs, step.attempts)
        self._record(node, step, outputs, result.cost_usd, result.usage, result.meta)
        if self.cache is not None and key is not None:
            entry = CachedStep(outputs, result.cost_usd, result.usage, result.meta, step.attempts)
            await self.cache.put(f"run:{self.run_id}:{key}", entry)
            if node.cache is not None:
                await self.cache.put(f"shared:{key}", entry, ttl_s=node.cache.ttl_s)
        return self._release(node)

    def _params(self, node: CompiledNode) -> dict[str, Any]:
        scope = self.scope
        try:
            if node.map_plan is not None:
                assert node.items is not None
                return {
                    "items": node.items(scope),
                    "concurrency": node.map_plan.concurrency,
                    "output": node.map_plan.output,
                    "run_item": self._item_runner(node),
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
            return params
        except (ValueError, KeyError) as exc:
            raise _StepFailed(NodeError(f"bad input: {exc}", code="bad_input"), 0) from None

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

    def _item_runner(
        self, node: CompiledNode
    ) -> Callable[[NodeContext, int, Any], Awaitable[NodeResult]]:
        plan = node.map_plan
        assert plan is not None
        step = self.steps[node.id]

        async def run_item(ctx: NodeContext, index: int, item: Any) -> NodeResult:
            scope = dict(self.scope)
            scope["item"] = {"": item}
            params = dict(plan.static)
            for name, resolve in plan.resolvers:
                params[name] = resolve(scope)
            inner = StepTrace(node=f"{node.id}[{index}]", kind=plan.kind.name)
            try:
                return await self._call(node, inner, plan.kind.fn, params, item=index)
            finally:
                step.add_meta({"item_attempts": step.meta.get("item_attempts", 0) + inner.attempts})

        return run_item

    async def _call(
        self,
        node: CompiledNode,
        step: StepTrace,
        fn: KindFn,
        params: dict[str, Any],
        item: int | None = None,
    ) -> NodeResult:
        """Call a kind with the node's timeout and retry policy."""
        policy = node.policy
        timeout = node.timeout_s
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
            except _StepFailed as exc:  # a map item that failed for good
                raise _StepFailed(exc.error, attempt) from None
            except Exception as exc:
                error = _as_node_error(exc, timeout)
            if not error.retryable or policy is None or attempt >= policy.max_attempts:
                raise _StepFailed(error, attempt)
            await asyncio.sleep(backoff_delay(policy, attempt, self.rng))

    def _check_outputs(
        self, node: CompiledNode, outputs: dict[str, Any], attempts: int
    ) -> dict[str, Any]:
        try:
            checked = {name: outputs[name] for name in node.output_names}
            for name, vtype in node.typed_outputs:
                checked[name] = check_value(checked[name], vtype)
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

    def _on_failure(
        self, node: CompiledNode, step: StepTrace, failed: _StepFailed
    ) -> list[CompiledNode]:
        step.ended = _now()
        step.attempts = failed.attempts
        step.error = str(failed.error)
        step.error_code = failed.error.code
        policy = node.spec.on_failure
        if isinstance(policy, FallbackSpec):
            step.status = "fallback"
            outputs = {name: None for name in node.kind.outputs}
            outputs.update(policy.fallback)
            self.scope[node.id] = outputs
            return self._release(node)
        step.status = "failed"
        if policy == "skip":
            step.reason = "on_failure: skip; its dependents are skipped"
            ready = self._release(node, skipped=f"upstream {node.id!r} failed")
            self._prune()
            return ready
        self._fail_run(f"node {node.id!r} failed: {failed.error}", failed.error.code)
        return []

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
