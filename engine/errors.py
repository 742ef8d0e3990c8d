"""One error class per phase: definition (parsing), validation (graph checks), run.

Definition and validation errors carry every problem found, each with a location a person can
find in their file, so a user fixes all of them in one pass instead of one per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DefinitionError",
    "EngineError",
    "NodeError",
    "Problem",
    "RunError",
    "StepFailed",
    "ValidationError",
]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a definition.

    ``code`` is stable (tests and the API match on it); ``location`` is a dotted path into the
    definition (``nodes.video.with.prompt``); ``line`` is filled in when the source text is known.
    """

    code: str
    location: str
    message: str
    severity: Severity = "error"
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "location": self.location,
            "message": self.message,
            "severity": self.severity,
        }
        if self.line is not None:
            data["line"] = self.line
        return data

    def __str__(self) -> str:
        where = f"{self.location} (line {self.line})" if self.line else self.location
        return f"{self.severity}: {where}: {self.message}"


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class _ProblemsError(EngineError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        head = f"{len(errors)} problem(s) in the workflow definition"
        super().__init__("\n".join([head, *(f"  {p}" for p in errors)]))


class DefinitionError(_ProblemsError):
    """The source could not be read as a workflow (syntax, structure, unknown fields)."""


class ValidationError(_ProblemsError):
    """The workflow parsed, but its graph is wrong (references, types, cycles, parameters)."""


class RunError(EngineError):
    """A run could not start or finish (bad inputs, deadline); node failures live in the trace."""


class NodeError(EngineError):
    """Raised by a node kind or provider. ``retryable`` decides whether the retry policy applies.

    Timeouts, rate limits and server errors are retryable; bad requests and refusals are not,
    because repeating them only bills the user again for the same failure.
    """

    def __init__(self, message: str, *, retryable: bool = False, code: str = "node_error") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class StepFailed(Exception):
    """A step failed for good, after ``attempts`` attempts (none when its inputs were bad)."""

    def __init__(self, error: NodeError, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts
