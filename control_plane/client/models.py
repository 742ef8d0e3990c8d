"""What the API answers, as the client returns it: the API's own response schemas.

The client is an entry point (tests/test_architecture.py), so it reads the domains' public
schemas instead of keeping copies that could drift from the server; only answers a route
builds in place get a model here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from control_plane.access.schemas import KeyCreated, KeyPublic
from control_plane.audit.schemas import AuditEntryPublic
from control_plane.experiments.routes import DecisionPublic
from control_plane.experiments.schemas import ExperimentPublic
from control_plane.experiments.verdict import ExperimentView
from control_plane.outcomes.routes import OutcomeResult
from control_plane.rollouts.schemas import CandidatePublic, RolloutPublic
from control_plane.runs.preview import AssignmentPreview
from control_plane.runs.schemas import RunDetail, RunPublic, StepState
from control_plane.runs.shadow.comparison import MetricComparison, ShadowComparison
from control_plane.runs.shadow.schemas import ShadowPublic
from control_plane.workflows.schemas import (
    ApplyResult,
    DiffPublic,
    LabelPublic,
    VersionPublic,
    WorkflowPublic,
)

__all__ = [
    "TERMINAL",
    "ApiErrorBody",
    "ApplyResult",
    "AssignmentPreview",
    "AuditEntryPublic",
    "CandidatePublic",
    "DecisionPublic",
    "DiffPublic",
    "ExperimentPublic",
    "ExperimentView",
    "FieldProblem",
    "KeyCreated",
    "KeyPublic",
    "LabelPublic",
    "MetricComparison",
    "OutcomeResult",
    "RolloutPublic",
    "RunDetail",
    "RunPublic",
    "ShadowComparison",
    "ShadowPublic",
    "StepState",
    "VersionPublic",
    "WorkflowPublic",
]

# A run in one of these statuses changes no more (until someone resumes a failed one).
TERMINAL = frozenset({"succeeded", "failed", "budget_exceeded"})


class FieldProblem(BaseModel):
    """One field of a 422 ``invalid_request``: where (``body.input.prompt``) and what was
    expected, in pydantic's words."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    location: str = ""
    message: str = ""
    type: str = ""

    @property
    def path(self) -> str:
        """The location without its request part: ``input.prompt``, ``query limit``."""
        where, _, rest = self.location.partition(".")
        if where == "body":
            return rest or "(body)"
        return f"{where} {rest}" if rest else where

    @property
    def expected(self) -> str:
        return self.message.removeprefix("Value error, ")


class ApiErrorBody(BaseModel):
    """The ``error`` object of every error answer; details beyond code and message kept."""

    model_config = ConfigDict(frozen=True, extra="allow")
    code: str = "http_error"
    message: str = ""
    fields: list[FieldProblem] = Field(default_factory=list)
