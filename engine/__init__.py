"""rollgraph's embedded graph engine: typed workflow graphs, checked when defined, run concurrently.

The public surface is small on purpose; the control plane and users' notebooks rely on it:

- ``define(source) -> Workflow`` and ``check(source) -> list[Problem]``
- ``Engine(...)`` with ``run``, ``resume``; ``run(workflow, inputs)`` and ``run_sync`` for one-offs
- ``RunResult`` and its ``Trace``; ``MemoryStepCache``, ``SQLiteStepCache``
- ``Limits`` (bounds on work) and ``LimitExceeded``
- ``node_kind`` to add kinds; ``NodeResult``, ``NodeContext``, ``NodeError``
- the errors: ``DefinitionError``, ``ValidationError``, ``RunError``
"""

from engine.budget import Budget
from engine.cache import CachedStep, MemoryStepCache, SQLiteStepCache, StepCache
from engine.context import NodeContext
from engine.engine import (
    Engine,
    RunResult,
    check,
    define,
    new_run_id,
    run,
    run_budget,
    run_sync,
)
from engine.errors import (
    DefinitionError,
    EngineError,
    NodeError,
    Problem,
    RunError,
    ValidationError,
)
from engine.http_policy import HttpAdvice
from engine.limits import LimitExceeded, Limits
from engine.node_kinds import NodeKind, NodeKinds, NodeResult, Param, default_kinds, node_kind
from engine.observe import RunObserver
from engine.trace import RunId, StepTrace, Trace
from engine.types import MediaRef, ValueType
from engine.workflow import Digest, InputBindingError, NodeId, Workflow

__all__ = [
    "Budget",
    "CachedStep",
    "DefinitionError",
    "Digest",
    "Engine",
    "EngineError",
    "HttpAdvice",
    "InputBindingError",
    "LimitExceeded",
    "Limits",
    "MediaRef",
    "MemoryStepCache",
    "NodeContext",
    "NodeError",
    "NodeId",
    "NodeKind",
    "NodeKinds",
    "NodeResult",
    "Param",
    "Problem",
    "RunError",
    "RunId",
    "RunObserver",
    "RunResult",
    "SQLiteStepCache",
    "StepCache",
    "StepTrace",
    "Trace",
    "ValidationError",
    "ValueType",
    "Workflow",
    "check",
    "default_kinds",
    "define",
    "new_run_id",
    "node_kind",
    "run",
    "run_budget",
    "run_sync",
]
