"""The workflow registry on SQLite and PostgreSQL: versions are immutable, labels move and roll
back in one call, every change is audited, and two versions diff node by node."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from control_plane.errors import (
    Conflict,
    ControlPlaneError,
    Forbidden,
    InvalidDefinition,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from control_plane.store.tables import AuditRow, LabelEventRow, VersionRow, WorkflowRow
from control_plane.workflows import diff_versions, service
from control_plane.workflows.schemas import ApplyResult
from control_plane.workflows.service import next_version_label
from tests.fixtures import example

V32 = example("v3.2")
V33 = example("v3.3")
ACTOR = "alice@example.com"

BROKEN = """\
name: product-video
nodes:
  enhance:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
  video:
    uses: video.generate
    with: {model: sim/video-fast, prompt: "${enhance.txt}"}
  cut:
    uses: media.compose
    with: {video: "${enhance.text}"}
outputs:
  video: "${cut.video}"
"""


def _without_version(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.startswith("version:"))


def _apply(session: Session, source: str, version: str | None = None) -> ApplyResult:
    result = service.apply_definition(session, source=source, version=version, actor=ACTOR)
    session.commit()  # the request boundary
    return result


def test_apply_creates_the_version_from_the_definition(session: Session) -> None:
    result = _apply(session, V32)
    assert result.created is True
    assert (result.workflow, result.version) == ("product-video", "v3.2")
    assert result.digest.startswith("sha256:")

    stored = service.get_version(session, workflow="product-video", version="v3.2")
    assert stored.digest == result.digest
    assert stored.status == "active"
    assert stored.created_by == ACTOR
    assert stored.source == V32
    assert "version" not in stored.definition  # the label is not content
    assert set(stored.definition["nodes"]) == {"enhance", "video", "voice", "cut"}
    assert stored.created_at.tzinfo is not None


def test_reapplying_the_same_content_is_a_no_op_that_says_so(session: Session) -> None:
    first = _apply(session, V32)
    again = _apply(session, V32)
    assert again.created is False
    assert again.version == "v3.2"
    assert again.digest == first.digest
    assert "identical to v3.2" in again.message
    # Formatting does not count as change: the digest ignores it.
    reformatted = _apply(
        session, "# a comment\n" + V32.replace("prompt: text", "prompt: {type: text}")
    )
    assert reformatted.created is False
    assert len(service.list_versions(session, workflow="product-video")) == 1


def test_same_content_under_a_new_label_names_the_existing_version(session: Session) -> None:
    _apply(session, V32)
    result = _apply(session, V32, version="v9")
    assert result.created is False
    assert result.version == "v3.2"
    assert result.message == "unchanged: identical to v3.2"
    with pytest.raises(NotFound):
        service.get_version(session, workflow="product-video", version="v9")


def test_invalid_definition_reports_every_problem_with_lines_and_stores_nothing(
    session: Session,
) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        service.apply_definition(session, source=BROKEN, version=None, actor=ACTOR)
    error = caught.value
    assert error.status_code == 422
    by_code = {p["code"]: p for p in error.problems}
    assert {"unknown_output", "type_mismatch"} <= by_code.keys()
    assert by_code["unknown_output"]["line"] == 8
    assert by_code["unknown_output"]["location"] == "nodes.video.with.prompt"
    assert "did you mean enhance.text?" in by_code["unknown_output"]["message"]
    assert by_code["type_mismatch"]["line"] == 11
    assert all(
        set(p) == {"code", "location", "line", "message", "severity"} for p in error.problems
    )
    assert error.to_json()["problems"] == error.problems
    session.commit()
    assert session.exec(select(WorkflowRow)).all() == []
    assert session.exec(select(AuditRow)).all() == []


def test_unparseable_definition_is_invalid_too(session: Session) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        service.apply_definition(session, source="name: x\nnodes: [\n", actor=ACTOR)
    assert caught.value.problems[0]["code"] == "syntax"
    assert caught.value.problems[0]["line"] is not None


def test_different_content_under_an_existing_label_conflicts(session: Session) -> None:
    original = _apply(session, V32)
    with pytest.raises(Conflict, match="immutable") as caught:
        service.apply_definition(session, source=V33, version="v3.2", actor=ACTOR)
    assert caught.value.status_code == 409
    session.rollback()
    stored = service.get_version(session, workflow="product-video", version="v3.2")
    assert stored.digest == original.digest
    assert stored.source == V32
    assert len(session.exec(select(VersionRow)).all()) == 1


def test_versions_are_numbered_when_no_label_is_given(session: Session) -> None:
    base = _without_version(V32)
    assert _apply(session, base).version == "v1"
    assert _apply(session, base.replace("sim/voice-neutral", "sim/voice-warm")).version == "v2"
    assert _apply(session, _without_version(V33)).version == "v3"
    assert _apply(session, V33).created is False  # identical to v3, whatever its file says
    listed = [v.version for v in service.list_versions(session, workflow="product-video")]
    assert listed == ["v1", "v2", "v3"]


def test_next_version_label() -> None:
    assert next_version_label([]) == "v1"
    assert next_version_label(["v1", "v2", "candidate"]) == "v3"
    assert next_version_label(["v3.2", "v3.3", "v2.9"]) == "v3.4"
    assert next_version_label(["v10", "v9"]) == "v11"


def test_list_get_and_not_found_messages(session: Session) -> None:
    _apply(session, V32)
    _apply(session, V33)
    (workflow,) = service.list_workflows(session)
    assert (workflow.name, workflow.versions, workflow.labels) == ("product-video", 2, {})
    versions = service.list_versions(session, workflow="product-video")
    assert [v.version for v in versions] == ["v3.2", "v3.3"]

    with pytest.raises(NotFound, match=r"no version 'v4'; versions: v3\.2, v3\.3") as caught:
        service.get_version(session, workflow="product-video", version="v4")
    assert caught.value.status_code == 404
    with pytest.raises(NotFound, match="no workflow named 'nope'; workflows: product-video"):
        service.list_versions(session, workflow="nope")
    with pytest.raises(NotFound, match="no label 'prod'; labels: none yet"):
        service.resolve_label(session, workflow="product-video", label="prod")


def test_archive_refuses_a_labelled_version_and_archived_versions_take_no_label(
    session: Session,
) -> None:
    _apply(session, V32)
    _apply(session, V33)
    service.set_label(session, workflow="product-video", label="prod", version="v3.2", actor=ACTOR)
    with pytest.raises(Conflict, match="target of label"):
        service.archive_version(session, workflow="product-video", version="v3.2", actor=ACTOR)

    archived = service.archive_version(
        session, workflow="product-video", version="v3.3", actor=ACTOR
    )
    session.commit()
    assert archived.status == "archived"
    with pytest.raises(Conflict, match="archived"):
        service.set_label(
            session, workflow="product-video", label="prod", version="v3.3", actor=ACTOR
        )
    # Archived content is not "identical to an active version": reapplying it needs a new label.
    with pytest.raises(Conflict, match="archived"):
        service.apply_definition(session, source=V33, actor=ACTOR)
    assert _apply(session, V33, version="v3.3.1").created is True
    audit = session.exec(select(AuditRow).where(AuditRow.action == "version.archive")).one()
    assert (audit.before, audit.after) == ({"status": "active"}, {"status": "archived"})


def test_promote_then_rollback_returns_to_the_previous_version(session: Session) -> None:
    _apply(session, V32)
    _apply(session, V33)
    wf = "product-video"
    first = service.set_label(session, workflow=wf, label="prod", version="v3.2", actor=ACTOR)
    session.commit()
    assert first.version == "v3.2"
    service.set_label(session, workflow=wf, label="prod", version="v3.3", actor="bob")
    session.commit()
    assert service.resolve_label(session, workflow=wf, label="prod").version == "v3.3"

    back = service.rollback_label(session, workflow=wf, label="prod", actor="carol")
    session.commit()
    assert back.version == "v3.2"
    assert service.resolve_label(session, workflow=wf, label="prod").version == "v3.2"
    assert service.list_workflows(session)[0].labels == {"prod": "v3.2"}

    history = service.label_history(session, workflow=wf, label="prod")
    assert [(h.reason, h.from_version, h.to_version, h.actor) for h in history] == [
        ("rollback", "v3.3", "v3.2", "carol"),
        ("promote", "v3.2", "v3.3", "bob"),
        ("promote", None, "v3.2", ACTOR),
    ]
    audit = session.exec(
        select(AuditRow).where(AuditRow.target_kind == "label").order_by(col(AuditRow.id))
    ).all()
    assert [(a.action, a.target, a.before, a.after) for a in audit] == [
        ("label.promote", "product-video:prod", None, {"version": "v3.2"}),
        ("label.promote", "product-video:prod", {"version": "v3.2"}, {"version": "v3.3"}),
        ("label.rollback", "product-video:prod", {"version": "v3.3"}, {"version": "v3.2"}),
    ]
    creates = session.exec(select(AuditRow).where(AuditRow.action == "version.create")).all()
    assert {a.target for a in creates} == {"product-video@v3.2", "product-video@v3.3"}
    assert all(a.actor == ACTOR and a.after and a.after["digest"] for a in creates)


def test_setting_a_label_to_where_it_points_records_nothing(session: Session) -> None:
    _apply(session, V32)
    for _ in range(2):
        service.set_label(
            session, workflow="product-video", label="prod", version="v3.2", actor=ACTOR
        )
    assert len(session.exec(select(LabelEventRow)).all()) == 1


def test_rollback_without_history_conflicts(session: Session) -> None:
    _apply(session, V32)
    with pytest.raises(Conflict, match="no history"):
        service.rollback_label(session, workflow="product-video", label="prod", actor=ACTOR)
    service.set_label(session, workflow="product-video", label="prod", version="v3.2", actor=ACTOR)
    with pytest.raises(Conflict, match="no earlier version"):
        service.rollback_label(session, workflow="product-video", label="prod", actor=ACTOR)


def test_diff_between_v32_and_v33(session: Session) -> None:
    _apply(session, V32)
    _apply(session, V33)
    result = service.diff(session, workflow="product-video", a="v3.2", b="v3.3")
    assert (result.workflow, result.a, result.b, result.identical) == (
        "product-video",
        "v3.2",
        "v3.3",
        False,
    )
    assert result.nodes_added == ["safety", "music"]
    assert result.nodes_removed == []
    enhance = {c.path: c for c in result.nodes_changed["enhance"]}
    assert (enhance["with.model"].before, enhance["with.model"].after) == (
        "sim/writer-small",
        "sim/writer-large",
    )
    assert enhance["with.style"].change == "added"
    voice = {c.path: c for c in result.nodes_changed["voice"]}
    assert voice["with.model"].after == "sim/voice-warm"
    video = {c.path: c for c in result.nodes_changed["video"]}
    assert video["with.seconds"].after == "${inputs.seconds}"
    assert video["when"].change == "added"
    edges = {(e.source, e.output, e.target) for e in result.edges_added}
    assert edges == {
        ("enhance", "text", "safety"),
        ("safety", "flagged", "video"),
        ("music", "audio", "cut"),
    }
    assert result.edges_removed == []
    assert result.inputs_added == ["seconds"]
    assert result.outputs_added == ["flagged"]
    assert [c.path for c in result.fields_changed] == ["description"]
    assert result.text.startswith("--- product-video@v3.2\n+++ product-video@v3.3\n")
    assert "-      model: sim/writer-small\n+      model: sim/writer-large\n" in result.text
    assert "+  safety:\n" in result.text

    backwards = service.diff(session, workflow="product-video", a="v3.3", b="v3.2")
    assert backwards.nodes_removed == ["safety", "music"]
    assert {(e.source, e.target) for e in backwards.edges_removed} == {(s, t) for s, _, t in edges}


def test_diff_of_identical_definitions_is_empty() -> None:
    definition = {"name": "x", "nodes": {"a": {"uses": "template", "with": {"text": "hi"}}}}
    result = diff_versions(definition, definition)
    assert result.identical is True
    assert result.text == ""
    assert result.nodes_changed == {} and result.edges_added == []


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound("x"), 404, "not_found"),
        (Conflict("x"), 409, "conflict"),
        (InvalidDefinition("x", problems=[]), 422, "invalid_definition"),
        (Forbidden("x"), 403, "forbidden"),
        (Unauthorized("x"), 401, "unauthorized"),
        (PayloadTooLarge("x"), 413, "payload_too_large"),
    ],
)
def test_errors_carry_their_http_status(error: ControlPlaneError, status: int, code: str) -> None:
    assert isinstance(error, ControlPlaneError)
    assert (error.status_code, error.code, error.message) == (status, code, "x")
    assert error.to_json()["code"] == code
