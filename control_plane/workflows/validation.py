"""A dry run of applying a definition: every define-time problem at its line, and for a valid
one the digest, the version label it would get, the version it is identical to, its graph and
its diff against a stored version; nothing is stored and nothing is audited.

The console's editor calls it as the text changes, so it answers problems with 200 (the
request was fine; the definition is what has problems), unlike ``POST /v1/workflows``, whose
422 refuses the write."""

from __future__ import annotations

import json
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

import engine
from control_plane.errors import NotFound
from control_plane.kit.storable import StoreText
from control_plane.workflows import repository as repo
from control_plane.workflows.diff import diff_versions
from control_plane.workflows.graph import version_graph as graph_of
from control_plane.workflows.lookup import row_id, version_row
from control_plane.workflows.schemas import DefinitionDiff, GraphPublic, ProblemPublic
from control_plane.workflows.service import next_version_label

__all__ = ["ValidationPublic", "WorkflowValidate", "validate_definition"]


class WorkflowValidate(BaseModel):
    """A definition to check as ``POST /v1/workflows`` would, without storing it."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, description="the definition as YAML or JSON text")
    version: StoreText | None = Field(
        default=None, min_length=1, max_length=64, description="the label it would be applied as"
    )
    against: StoreText | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="a stored version of the same workflow to diff the draft against",
    )


class ValidationPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    valid: bool = Field(description="no error: applying it would store a version")
    problems: list[ProblemPublic] = Field(
        description="errors and warnings, each with its location and line, in the define-time "
        "check's words (with its 'did you mean')"
    )
    workflow: str | None = Field(default=None, description="the workflow it defines, when valid")
    digest: str | None = None
    version: str | None = Field(default=None, description="the version label it would get")
    identical_to: str | None = Field(
        default=None, description="an active version with this content: applying stores nothing"
    )
    graph: GraphPublic | None = None
    diff: DefinitionDiff | None = Field(default=None, description="from `against` to the draft")


def _version_line(source: str) -> int | None:
    """The line of a top-level ``version:`` key (YAML) or ``"version":`` (JSON), if any."""
    for number, line in enumerate(source.splitlines(), start=1):
        if line.startswith("version:") or line.lstrip().startswith('"version":'):
            return number
    return None


def validate_definition(
    session: Session,
    *,
    source: str,
    version: str | None,
    against: str | None,
    define: Callable[[str], engine.Workflow],
    kinds: engine.NodeKinds,
) -> ValidationPublic:
    try:
        definition = define(source)
    except (engine.DefinitionError, engine.ValidationError) as exc:
        problems = [ProblemPublic(**p.to_json()) for p in exc.problems]
        return ValidationPublic(valid=False, problems=problems)
    name, digest = definition.name, str(definition.digest)
    normalized = definition.spec.normalized()
    warnings = [ProblemPublic(**p.to_json()) for p in definition.warnings]
    workflow = repo.get_workflow(session, name)
    label = version or definition.version
    identical_to = None
    changes = None
    if workflow is None and against is not None:
        raise NotFound(f"workflow {name!r} has no versions yet; there is no {against!r} to diff")
    if workflow is not None:
        twins = repo.versions_with_digest(session, row_id(workflow), digest, status="active")
        identical_to = twins[0].version if twins else None
        if label is None:
            label = identical_to or next_version_label(
                repo.version_labels(session, row_id(workflow))
            )
        elif (same := repo.get_version(session, row_id(workflow), label)) is not None:
            if same.digest != digest:
                # what applying would refuse with 409, said while the text is being written
                taken = ProblemPublic(
                    code="version_exists",
                    location="version",
                    line=_version_line(source) if version is None else None,
                    message=f"{name} {label} already exists with other content; versions are "
                    f"immutable: change `version:` or apply it under another label",
                )
                return ValidationPublic(valid=False, problems=[taken, *warnings])
            identical_to = label
        if against is not None:
            base = version_row(session, workflow, against)  # 404 names a missing version
            changes = diff_versions(
                json.loads(base.definition),
                normalized,
                a_label=f"{name}@{against}",
                b_label=f"{name}@{label} (draft)",
            )
    label = label or "v1"
    return ValidationPublic(
        valid=True,
        problems=warnings,
        workflow=name,
        digest=digest,
        version=label,
        identical_to=identical_to,
        graph=graph_of(normalized, workflow=name, version=label, digest=digest, kinds=kinds),
        diff=changes,
    )
