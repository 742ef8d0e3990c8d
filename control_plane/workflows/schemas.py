"""What the registry returns: plain pydantic models, never table rows, so the API layer can
serialise them as they are and the tables can change without breaking clients."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.kit.time import UtcDatetime

__all__ = [
    "ApplyResult",
    "DefinitionDiff",
    "DiffPublic",
    "EdgePublic",
    "FieldChange",
    "GraphEdge",
    "GraphNode",
    "GraphPublic",
    "LabelEventPublic",
    "LabelPublic",
    "ProblemPublic",
    "VersionDetail",
    "VersionPublic",
    "WorkflowPublic",
]


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProblemPublic(_Public):
    code: str
    location: str
    line: int | None = None
    message: str
    severity: Literal["error", "warning"] = "error"


class WorkflowPublic(_Public):
    name: str
    created_at: UtcDatetime
    versions: int = Field(description="number of versions, archived included")
    labels: dict[str, str] = Field(default_factory=dict, description="label → version")


class VersionPublic(_Public):
    workflow: str
    version: str
    digest: str
    status: Literal["active", "archived"]
    created_at: UtcDatetime
    created_by: str


class VersionDetail(VersionPublic):
    definition: dict[str, Any] = Field(description="the normalised definition")
    source: str = Field(description="the definition exactly as it was sent")


class LabelPublic(_Public):
    workflow: str
    name: str
    version: str
    updated_at: UtcDatetime


class LabelEventPublic(_Public):
    workflow: str
    label: str
    from_version: str | None
    to_version: str
    actor: str
    at: UtcDatetime
    reason: Literal["promote", "rollback", "set"]


class ApplyResult(_Public):
    workflow: str
    version: str
    digest: str
    created: bool
    message: str
    warnings: list[ProblemPublic] = Field(default_factory=list)


class FieldChange(_Public):
    """One field of a node, input or output: ``path`` is dotted (``with.model``, ``retry``)."""

    path: str
    change: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class EdgePublic(_Public):
    """``source.output`` feeds node ``target`` (taken from the ``${source.output}`` references in
    the target's parameters and ``when``)."""

    source: str
    output: str
    target: str


class DefinitionDiff(_Public):
    identical: bool
    nodes_added: list[str]
    nodes_removed: list[str]
    nodes_changed: dict[str, list[FieldChange]]
    edges_added: list[EdgePublic]
    edges_removed: list[EdgePublic]
    inputs_added: list[str]
    inputs_removed: list[str]
    inputs_changed: dict[str, list[FieldChange]]
    outputs_added: list[str]
    outputs_removed: list[str]
    outputs_changed: dict[str, list[FieldChange]]
    fields_changed: list[FieldChange] = Field(
        description="top-level fields other than nodes, inputs and outputs (description, ...)"
    )
    text: str = Field(description="unified diff of the canonical YAML")


class DiffPublic(DefinitionDiff):
    workflow: str
    a: str
    b: str


class GraphNode(_Public):
    """A node as drawn: ``inputs`` are the parameters it sets (name → declared type),
    ``outputs`` what its kind produces (name → type)."""

    id: str
    kind: str = Field(description="the node kind it `uses`")
    model: str | None = Field(default=None, description="`provider/model` of a model node")
    inputs: dict[str, str]
    outputs: dict[str, str]
    conditional: bool = Field(description="the node has a `when` condition")
    on_failure: Literal["fail", "skip", "fallback"] = "fail"


class GraphEdge(EdgePublic):
    input: str | None = Field(
        description="the parameter of `target` that reads it; null when its `when` does"
    )
    type: str = Field(description="type of the value `source.output` carries, e.g. `text`")


class GraphPublic(_Public):
    """A version's graph: nodes in definition order and node-to-node edges with their types."""

    workflow: str
    version: str
    digest: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
