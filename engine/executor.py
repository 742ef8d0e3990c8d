"""Running one workflow: dataflow order, conditions, skips, pruning, cancellation, the deadline.

A node starts the moment its last dependency completes, so independent branches overlap and a
run lasts as long as its slowest path, never "layer by layer". Scheduling works in chains: the
task that finishes a node goes straight on with one of the consumers that became ready and
spawns tasks only for the others, so a chain of steps costs one task, not one per step.

When a required node fails for good the run fails and every in-flight node is cancelled; when a
node is skipped, in-flight nodes that can no longer reach an output are cancelled too.

How a single step runs (parameters, step cache, retries, timeouts, output checks) is in
``engine.step_runner``; ``RunState`` adds the scheduling to it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine.budget import BUDGET_EXCEEDED
from engine.cache import StepCache
from engine.context import NodeContext, Runtime
from engine.gates import when_skips
from engine.limits import TOO_LARGE, LimitExceeded, json_size
from engine.spec import FallbackSpec
from engine.step_runner import StepFailed, StepRunner, as_node_error, backoff_delay
from engine.trace import StepStatus, StepTrace, Trace
from engine.workflow import CompiledNode, Workflow

# backoff_delay lives in engine.step_runner; it stays importable from here for existing callers.
__all__ = ["RunState", "backoff_delay"]

_now = time.perf_counter
_FINISHED = frozenset({"succeeded", "failed", "skipped", "cancelled", "fallback"})
_UNNEEDED = "no longer needed: nothing downstream can use it"


class RunState(StepRunner):
    """The mutable state of one run. Created per run; never shared between runs."""

    # Defaults on the class: a run only writes the attributes it changes.
    stopped = False  # the run failed or ended: start nothing more
    done: asyncio.Future[None] | None = None

    def __init__(
        self,
        workflow: Workflow,
        runtime: Runtime,
        cache: StepCache | None,
        trace: Trace,
        inputs: dict[str, Any],
        seed: int,
    ) -> None:
        super().__init__(workflow, runtime, cache, trace, inputs, seed)
        self.waiting = workflow.waiting.copy()
        self.skip_reason: dict[str, str] = {}
        self.unneeded: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.owner: dict[str, asyncio.Task[Any]] = {}  # running node → the task running it
        self.remaining = len(workflow.nodes)
        self.loop: asyncio.AbstractEventLoop

    async def execute(self, deadline_s: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.started_at = self.loop.time()
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
            if pending and self.trace.status == BUDGET_EXCEEDED:
                pending = await self._let_admitted_finish(pending, deadline_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            if self.remaining:
                for step in self.steps.values():
                    if step.status == "pending":
                        step.status = "cancelled"
                        step.reason = step.reason or "the run ended before this step could start"

    async def _let_admitted_finish(
        self, pending: list[asyncio.Task[None]], deadline_s: float | None
    ) -> list[asyncio.Task[None]]:
        """Out of budget: steps already admitted were within it; let them end (and be cached
        for a resume) rather than waste what they billed, until the run's deadline."""
        left = None if deadline_s is None else self.started_at + deadline_s - self.loop.time()
        if left is None or left > 0:
            await asyncio.wait(pending, timeout=left)
        return [t for t in pending if not t.done()]

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

    def final_outputs(self) -> dict[str, Any] | None:
        """The outputs of a run whose steps all ended well, or ``None`` with the run failed
        when they are larger than the engine's ``max_response_bytes`` (``too_large``)."""
        limit = self.runtime.limits.max_response_bytes
        try:
            values = self.outputs()
        except LimitExceeded as exc:
            self._fail_run(f"the outputs: {exc}", exc.code)
            return None
        size = json_size(values, stop_above=limit)
        if size > limit:
            self._fail_run(
                f"the outputs are larger than {limit:,} bytes (the limit; "
                "ROLLGRAPH_MAX_RESPONSE_BYTES on a server): return a reference to large data, "
                "not the data",
                TOO_LARGE,
            )
            return None
        return values

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
        fast = self.cache is None and self.runtime.observer is None  # an observer sees each step
        guard = self.guard
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
                        if guard is not None and node.kind.provider_task is not None:
                            self.admit(guard, node.id, node.kind, params)
                        try:
                            result = await node.fn(
                                NodeContext(self.runtime, self.run_id, node.id, self.seed, 1),
                                params,
                            )
                        except Exception as exc:
                            raise StepFailed(as_node_error(exc, None), 1) from None
                        finally:
                            if guard is not None and guard.pending:  # the bill replaces it
                                guard.pending.pop(node.id, None)
                        if type(result) is dict and result.keys() == node.unchecked_keys:
                            # Exactly the declared json outputs: nothing to check or drop.
                            scope[node.id] = result
                            step.ended = _now()
                            step.status = "succeeded"
                        else:
                            self._finish_result(node, step, result)
                            if guard is not None:
                                guard.settle(node.id, step.cost_usd, step.usage)
                        ready = self._release(node)
                    else:
                        ready = await self._step(node, step)
                except asyncio.CancelledError:
                    pruned = self._on_cancelled(node, step, task)
                    if pruned is None:
                        raise
                    ready = pruned
                except StepFailed as failed:
                    ready = self._on_failure(node, step, failed)
                node = self._advance(ready)
        except Exception as exc:
            # An engine bug: fail the run rather than leave it waiting for this chain forever.
            self._fail_run(f"internal error in the engine: {exc!r}", "internal_error")
            raise

    async def _step(self, node: CompiledNode, step: StepTrace) -> list[CompiledNode]:
        """Any step: its condition, then parameters, cache, retries and timeout."""
        if node.when is not None:
            reason = when_skips(node, self.scope)
            if reason is not None:
                step.ended = step.started
                return self._finish_skipped(node, reason, "skipped")
        await self._run_step(node, step)
        return self._release(node)

    def _on_cancelled(
        self, node: CompiledNode, step: StepTrace, task: asyncio.Task[Any] | None
    ) -> list[CompiledNode] | None:
        """Record a cancelled step: the consumers now ready when only this node was pruned,
        ``None`` when the run is stopping and the cancellation must propagate."""
        step.ended = _now()
        step.status = "cancelled"
        if self.stopped or node.id not in self.unneeded:
            step.reason = step.reason or "the run failed or ended"
            return None
        # Pruned: this task was cancelled for this node only; carry on with the run.
        assert task is not None  # pruning happens only where `track` holds
        task.uncancel()
        step.reason = _UNNEEDED
        return self._release(node, skipped=f"upstream {node.id!r} was cancelled")

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

    def _out_of_budget(self, step: StepTrace, reason: str) -> list[CompiledNode]:
        """Stop scheduling: the step that would cross the budget never started; the run ends
        ``budget_exceeded`` and can be resumed (with a raised budget) from its completed steps."""
        step.status = "cancelled"
        step.reason = reason
        self._fail_run(reason, BUDGET_EXCEEDED)
        self.trace.status = "budget_exceeded"
        return []

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

    def _on_failure(
        self, node: CompiledNode, step: StepTrace, failed: StepFailed
    ) -> list[CompiledNode]:
        self._record_failure(step, failed)
        if failed.error.code == BUDGET_EXCEEDED:  # no fallback or skip: the run stops here
            return self._out_of_budget(step, str(failed.error))
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
