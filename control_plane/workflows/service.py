"""The workflow registry: immutable versions, their diffs and audit; labels (``labels.py``) are
re-exported here so callers use one service module.

Every function takes the caller's ``Session`` and never commits: the request (or CLI command)
that called it commits once, so a failure anywhere leaves nothing half-written. Changes are
flushed so unique constraints fire here, as a ``Conflict``, rather than at the caller's commit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from sqlmodel import Session

import engine
from control_plane.audit.service import record as audit
from control_plane.errors import Conflict, InvalidDefinition
from control_plane.kit.session import flush
from control_plane.store.tables import VersionRow, WorkflowRow
from control_plane.workflows import repository as repo
from control_plane.workflows.diff import diff_versions
from control_plane.workflows.graph import version_graph as graph_of

# Label use cases live in their own module; they are part of this service's surface.
from control_plane.workflows.labels import (
    LabelReason,
    label_history,
    list_labels,
    resolve_label,
    rollback_label,
    set_label,
)
from control_plane.workflows.lookup import (
    label_public,
    row_id,
    version_detail,
    version_public,
    version_row,
    workflow_row,
)
from control_plane.workflows.schemas import (
    ApplyResult,
    DiffPublic,
    GraphPublic,
    ProblemPublic,
    VersionDetail,
    VersionPublic,
    WorkflowPublic,
)

__all__ = [
    "LabelReason",
    "apply_definition",
    "archive_version",
    "diff",
    "get_version",
    "label_history",
    "list_labels",
    "list_versions",
    "list_workflows",
    "next_version_label",
    "resolve_label",
    "rollback_label",
    "set_label",
    "version_graph",
]

_NUMBERED = re.compile(r"^v(\d+(?:\.\d+)*)$")


def next_version_label(existing: Sequence[str]) -> str:
    """After the highest ``vN`` (or ``vN.M``) bump the last number: v2 → v3, v3.3 → v3.4.

    Archived labels count too: a label is never reused, so ``v4`` always means one definition.
    """
    numbered = [
        tuple(int(p) for p in m.group(1).split(".")) for m in map(_NUMBERED.match, existing) if m
    ]
    if not numbered:
        return "v1"
    *head, last = max(numbered)
    return "v" + ".".join(str(n) for n in (*head, last + 1))


def _define(source: str, define: Callable[[str], engine.Workflow]) -> engine.Workflow:
    try:
        return define(source)
    except (engine.DefinitionError, engine.ValidationError) as exc:
        errors = [p for p in exc.problems if p.severity == "error"]
        raise InvalidDefinition(
            f"{len(errors)} problem(s) in the workflow definition", problems=exc.problems
        ) from exc


def apply_definition(
    session: Session,
    *,
    source: str,
    version: str | None = None,
    actor: str,
    define: Callable[[str], engine.Workflow] = engine.define,
) -> ApplyResult:
    """Store a new version of the workflow the definition names, or say why nothing changed.

    The label is ``version``, else the definition's ``version:``, else the next in sequence.
    Re-applying content identical to an active version is a no-op naming it; reusing a label for
    different content is a ``Conflict`` (versions are immutable). ``define`` checks the
    definition: the server passes its own engine's, whose node kinds and providers will run it.
    """
    workflow_def = _define(source, define)
    warnings = [ProblemPublic(**p.to_json()) for p in workflow_def.warnings]
    name, digest = workflow_def.name, str(workflow_def.digest)
    label = version or workflow_def.version
    workflow = repo.get_workflow(session, name)

    def unchanged(existing: VersionRow, message: str) -> ApplyResult:
        return ApplyResult(
            workflow=name,
            version=existing.version,
            digest=digest,
            created=False,
            message=message,
            warnings=warnings,
        )

    if workflow is not None:
        if label is not None and (same := repo.get_version(session, row_id(workflow), label)):
            if same.digest != digest:
                raise Conflict(
                    f"{name} {label} already exists with different content ({same.digest}); "
                    f"versions are immutable: apply it under a new version label"
                )
            if same.status == "archived":
                raise Conflict(
                    f"{name} {label} exists with this content but is archived; "
                    f"apply it under a new version label to use it again"
                )
            return unchanged(same, f"unchanged: identical to {label}")
        twins = repo.versions_with_digest(session, row_id(workflow), digest, status="active")
        if twins:
            return unchanged(twins[0], f"unchanged: identical to {twins[0].version}")
    else:
        workflow = WorkflowRow(name=name)
        session.add(workflow)
        flush(session, f"workflow {name!r}")
    if label is None:
        label = next_version_label(repo.version_labels(session, row_id(workflow)))
    row = VersionRow(
        workflow_id=row_id(workflow),
        version=label,
        digest=digest,
        definition=json.dumps(workflow_def.spec.normalized()),  # keeps the file's node order
        source=source,
        created_by=actor,
    )
    session.add(row)
    audit(
        session,
        actor=actor,
        action="version.create",
        target_kind="version",
        target=f"{name}@{label}",
        before=None,
        after={"version": label, "digest": digest, "status": "active"},
    )
    flush(session, f"{name} {label}")
    return ApplyResult(
        workflow=name,
        version=label,
        digest=digest,
        created=True,
        message=f"created {name} {label}",
        warnings=warnings,
    )


def list_workflows(session: Session) -> list[WorkflowPublic]:
    counts = repo.version_counts(session)
    out = []
    for wf in repo.list_workflows(session):
        rows = repo.labels_of(session, row_id(wf))
        labels = {lab.name: label_public(session, wf, lab).version for lab in rows}
        out.append(
            WorkflowPublic(
                name=wf.name,
                created_at=wf.created_at,
                versions=counts.get(row_id(wf), 0),
                labels=labels,
            )
        )
    return out


def list_versions(session: Session, *, workflow: str) -> list[VersionPublic]:
    wf = workflow_row(session, workflow)
    return [version_public(wf, row) for row in repo.versions_of(session, row_id(wf))]


def get_version(session: Session, *, workflow: str, version: str) -> VersionDetail:
    wf = workflow_row(session, workflow)
    row = version_row(session, wf, version)
    return version_detail(wf, row)


def version_graph(
    session: Session, *, workflow: str, version: str, kinds: engine.NodeKinds
) -> GraphPublic:
    """The graph of one version, with the types ``kinds`` give its ports and edges."""
    wf = workflow_row(session, workflow)
    row = version_row(session, wf, version)
    return graph_of(
        json.loads(row.definition),
        workflow=workflow,
        version=version,
        digest=row.digest,
        kinds=kinds,
    )


def archive_version(session: Session, *, workflow: str, version: str, actor: str) -> VersionPublic:
    """Retire a version: it stays readable and diffable, but no label may point at it."""
    wf = workflow_row(session, workflow)
    row = version_row(session, wf, version)
    if row.status == "archived":
        return version_public(wf, row)
    pointing = repo.labels_for_version(session, row_id(row))
    if pointing:
        names = ", ".join(lab.name for lab in pointing)
        raise Conflict(
            f"{workflow} {version} is the target of label(s) {names}; "
            f"move them to another version before archiving it"
        )
    row.status = "archived"
    session.add(row)
    audit(
        session,
        actor=actor,
        action="version.archive",
        target_kind="version",
        target=f"{workflow}@{version}",
        before={"status": "active"},
        after={"status": "archived"},
    )
    flush(session, f"{workflow} {version}")
    return version_public(wf, row)


def diff(session: Session, *, workflow: str, a: str, b: str) -> DiffPublic:
    """What changed from version ``a`` to version ``b`` of one workflow."""
    wf = workflow_row(session, workflow)
    row_a, row_b = version_row(session, wf, a), version_row(session, wf, b)
    result = diff_versions(
        json.loads(row_a.definition),
        json.loads(row_b.definition),
        a_label=f"{workflow}@{a}",
        b_label=f"{workflow}@{b}",
    )
    return DiffPublic(workflow=workflow, a=a, b=b, **result.model_dump())
