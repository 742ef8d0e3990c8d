"""``switch`` and ``coalesce``: route a run down one of several branches, and merge them again.

```yaml
route:
  uses: switch
  with:
    value: ${safety.category}            # optional: cases then match this value
    cases:
      violence: {then: [block]}          # matches "violence" (the case's name) ...
      score: {match: 3, then: [review]}  # ... or its `match:` literal
      high: {when: "${score.value} >= 0.7", then: [publish]}   # or a condition
    default: [draft]                     # when no case holds (optional)
merged:
  uses: coalesce
  with: {values: ["${block.text}", "${publish.text}", "${draft.text}"]}
```

The engine decides both (``engine.branching``): a switch's parameter ``case`` is the name of the
first case that holds, and the nodes under the other cases are skipped; ``coalesce``'s ``value``
is the first of its references whose node ran and gave a value. These kinds only hand it on, so
a switch is a step of its own in the trace, with the case it chose as its output.
"""

from __future__ import annotations

from typing import Any

from engine.context import NodeContext
from engine.node_kinds import Param, node_kind

__all__ = ["coalesce", "switch"]


@node_kind(
    "switch",
    inputs={
        "value": Param.optional("json"),
        "cases": "json",
        "default": Param.optional("json"),
    },
    outputs={"case": "text"},
    description="Run the nodes of the first case that holds; skip the other cases' nodes.",
)
async def switch(ctx: NodeContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"case": params["case"]}


@node_kind(
    "coalesce",
    inputs={"values": "json"},
    outputs={"value": "json"},
    description="The first of several references whose node ran (merges a switch's branches).",
)
async def coalesce(ctx: NodeContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"value": params["value"]}
