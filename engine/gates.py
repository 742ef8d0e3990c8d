"""Whether a node with a condition runs: its ``when``, and for a switch's branch the case chosen.

Kept apart from the scheduler so the scheduler only learns "skip, and why" or "run".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import NodeError
from engine.step_runner import StepFailed
from engine.workflow import CompiledNode

__all__ = ["when_skips"]


def when_skips(node: CompiledNode, scope: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why ``node`` is skipped, or ``None`` when it runs. A condition that cannot be decided
    (a json value of the wrong type, a path the value does not have) fails the step."""
    assert node.when is not None
    try:
        if bool(node.when(scope)) != node.when_negated:
            return None
        if node.when_reason is not None:
            return str(node.when_reason(scope))
    except (ValueError, KeyError, TypeError) as exc:
        raise StepFailed(NodeError(f"when: {exc}", code="bad_input"), 0) from None
    return f"when {node.spec.when!r} is false"
