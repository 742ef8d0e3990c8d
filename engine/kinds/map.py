"""``map``: fan out over a list, running one inner node kind per element, a bounded number at once.

```yaml
explain:
  uses: map
  with:
    items: ${topics.topics}
    concurrency: 4
    node: {uses: llm.generate, with: {model: sim/writer-small, prompt: "Explain ${item}"}}
    output: text          # which output of the inner kind to collect (default: its first)
```

The engine binds ``run_item`` (``engine.map_steps``: each element a step of its own, with the
inner node's retry policy and timeout, its trace entry, cache entry and budget admission); this
kind only bounds concurrency and adds up cost and usage. If one element fails for good the
others are cancelled: a partial list would silently misalign with ``items``. An element refused
by the run's budget is different: elements already started were admitted within it, so they
end (and are cached for a resume) while no further element starts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engine.budget import BUDGET_EXCEEDED
from engine.context import NodeContext
from engine.errors import NodeError, StepFailed
from engine.limits import LimitExceeded, json_size
from engine.node_kinds import NodeResult, Param, node_kind

__all__ = ["map_items"]


@node_kind(
    "map",
    inputs={
        "items": "json",
        "node": "json",
        "output": Param.optional("text"),
        "concurrency": Param.optional("integer", 4),
    },
    outputs={"results": "list[json]"},
    description="Run one node kind for every element of a list, with bounded concurrency.",
    retry_by_default=False,
)
async def map_items(ctx: NodeContext, params: dict[str, Any]) -> NodeResult:
    items = params["items"]
    if not isinstance(items, list):
        raise NodeError(f"map items must be a list, got {type(items).__name__}", code="bad_input")
    run_item = params["run_item"]
    output = params["output"]
    limit = asyncio.Semaphore(max(1, int(params.get("concurrency") or 4)))
    # The results are one value: bounded like a run's outputs, and checked as they arrive so
    # the step stops (cancelling the rest) instead of holding all of them first.
    max_bytes = ctx.runtime.limits.max_response_bytes
    collected = 0
    refused: list[StepFailed] = []

    async def one(index: int, item: Any) -> NodeResult | None:
        nonlocal collected
        async with limit:
            if refused:  # out of budget: start nothing more
                return None
            sub = NodeContext(ctx.runtime, ctx.run_id, f"{ctx.node}[{index}]", ctx.seed, 1)
            try:
                result: NodeResult = await run_item(sub, index, item)
            except StepFailed as failed:
                if failed.error.code != BUDGET_EXCEEDED:
                    raise
                refused.append(failed)
                return None
        collected += json_size(result.outputs.get(output), stop_above=max_bytes)
        if collected > max_bytes:
            raise LimitExceeded(
                f"map results are larger than {max_bytes:,} bytes by element {index} (the limit; "
                "ROLLGRAPH_MAX_RESPONSE_BYTES on a server)"
            )
        return result

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i, item)) for i, item in enumerate(items)]
    except ExceptionGroup as failed:  # report the element that failed, not a wrapper
        raise failed.exceptions[0] from None
    if refused:
        raise refused[0]
    results = [r for r in (t.result() for t in tasks) if r is not None]
    usage: dict[str, float] = {}
    for r in results:
        for key, value in r.usage.items():
            usage[key] = usage.get(key, 0.0) + value
    return NodeResult(
        outputs={"results": [r.outputs.get(output) for r in results]},
        cost_usd=sum(r.cost_usd for r in results),
        usage=usage,
        meta={"items": len(results)},
    )
