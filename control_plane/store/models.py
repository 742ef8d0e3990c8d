"""The tables of the registry: workflows, their immutable versions, movable labels, the labels'
history and the audit log; rollouts, runs and traces; API keys; idempotency keys.

Every constraint is named so migrations and autogenerate comparisons agree on both SQLite and
PostgreSQL. Timestamps are UTC; SQLite hands them back naive, and the schemas layer marks them UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

__all__ = [
    "EXPERIMENT_STATUSES",
    "IDEMPOTENCY_STATUSES",
    "KEY_ROLES",
    "LABEL_REASONS",
    "METRIC_KINDS",
    "RUN_MODES",
    "RUN_STATUSES",
    "VERSION_STATUSES",
    "ApiKeyRow",
    "ArmStatRow",
    "AuditRow",
    "ExperimentDecisionRow",
    "ExperimentRow",
    "IdempotencyKeyRow",
    "LabelEventRow",
    "LabelRow",
    "MetricRow",
    "OutcomeRow",
    "RegistryStateRow",
    "RolloutRow",
    "RunRow",
    "RunStepRow",
    "RunTraceRow",
    "VersionRow",
    "WorkflowRow",
    "as_utc",
    "utcnow",
]

VERSION_STATUSES: Final = ("active", "archived")
LABEL_REASONS: Final = ("promote", "rollback", "set")
# `queued` is for runs handed to a queue of workers (not used by the in-process server yet).
RUN_STATUSES: Final = ("queued", "running", "succeeded", "failed")
RUN_MODES: Final = ("sync", "async")
KEY_ROLES: Final = ("admin", "runner", "viewer")
IDEMPOTENCY_STATUSES: Final = ("in_progress", "done")
EXPERIMENT_STATUSES: Final = ("running", "stopped", "promoted", "rolled_back")
METRIC_KINDS: Final = ("proportion", "mean")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A datetime in UTC. Rows are stored in UTC, SQLite hands them back naive, and it compares
    text without offsets, so every stored or compared time goes through here; a naive value is
    read as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: earlier or later than any row
        edge = datetime.min if value.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


def _ts() -> Any:
    # A fresh Column per table: SQLAlchemy columns belong to exactly one table.
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class WorkflowRow(SQLModel, table=True):
    __tablename__ = "workflow"
    __table_args__ = (UniqueConstraint("name", name="uq_workflow_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    created_at: datetime = _ts()


class VersionRow(SQLModel, table=True):
    """One immutable version. ``definition`` is the normalised definition as JSON text (what the
    digest and diffs are taken over); ``source`` is exactly what the user sent."""

    __tablename__ = "workflow_version"
    __table_args__ = (
        UniqueConstraint("workflow_id", "version", name="uq_workflow_version_label"),
        Index("ix_workflow_version_digest", "workflow_id", "digest"),
        CheckConstraint("status IN ('active', 'archived')", name="ck_workflow_version_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    version: str = Field(max_length=100)
    digest: str = Field(max_length=80)
    definition: str = Field(sa_column=Column(Text, nullable=False))
    source: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="active", max_length=16)
    created_at: datetime = _ts()
    created_by: str = Field(max_length=200)


class LabelRow(SQLModel, table=True):
    """A movable name (``prod``, ``staging``) pointing at one version of a workflow."""

    __tablename__ = "workflow_label"
    __table_args__ = (UniqueConstraint("workflow_id", "name", name="uq_workflow_label_name"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    name: str = Field(max_length=100)
    version_id: int = Field(foreign_key="workflow_version.id")
    updated_at: datetime = _ts()


class LabelEventRow(SQLModel, table=True):
    """One move of a label; a rollback reads the latest to know where the label came from."""

    __tablename__ = "workflow_label_event"
    __table_args__ = (
        Index("ix_workflow_label_event_label", "workflow_id", "label"),
        CheckConstraint(
            "reason IN ('promote', 'rollback', 'set')", name="ck_workflow_label_event_reason"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    label: str = Field(max_length=100)
    from_version_id: int | None = Field(default=None, foreign_key="workflow_version.id")
    to_version_id: int = Field(foreign_key="workflow_version.id")
    actor: str = Field(max_length=200)
    at: datetime = _ts()
    reason: str = Field(max_length=16)


class AuditRow(SQLModel, table=True):
    """Who changed what, with the state before and after, for every mutation of the registry."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_kind", "target"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=100)
    target_kind: str = Field(max_length=50)
    target: str = Field(max_length=400)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    at: datetime = _ts()


class RegistryStateRow(SQLModel, table=True):
    """The registry's generation (one row, ``id = 1``): every audited change increments it in its
    own transaction, so caches of registry reads know when they went stale."""

    __tablename__ = "registry_state"
    __table_args__ = (CheckConstraint("id = 1", name="ck_registry_state_single_row"),)

    id: int = Field(default=1, sa_column=Column(Integer, primary_key=True, autoincrement=False))
    generation: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class RolloutRow(SQLModel, table=True):
    """A label's rollout: candidates that take a share of the traffic the label would get.

    ``salt`` is drawn once when the row is created and never changes, so a user's bucket is the
    same for the whole life of the rollout (ramping 10 % → 20 % only adds users). Setting the
    share to 0 empties ``candidates`` but keeps the row, and with it the salt.
    """

    __tablename__ = "rollout"
    __table_args__ = (UniqueConstraint("workflow_id", "label", name="uq_rollout_label"),)

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    label: str = Field(max_length=100)
    salt: str = Field(max_length=64)
    # [{"version": "v3.3", "share": 0.1}]; shares are fractions of all of the label's traffic.
    candidates: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    updated_at: datetime = _ts()
    updated_by: str = Field(max_length=200)


class RunRow(SQLModel, table=True):
    """One run served by ``POST /v1/run``: which version, why, and how it went.

    Workflow and version are stored by name, not by foreign key: a run is a historical fact
    that list filters and analysis read without joins, and it reads the same after archiving.
    ``input`` and ``digest`` are what a resume needs to run the same graph on the same input.
    An async run is stored ``running`` when it is accepted; ``deadline_at`` bounds how long it
    can stay so (a ``running`` row past it belongs to a process that stopped). ``attempt``
    counts executions: a resume runs the same run id again.
    """

    __tablename__ = "run"
    __table_args__ = (
        Index("ix_run_workflow_version", "workflow", "version", "created_at"),
        Index("ix_run_status", "status", "created_at"),
        Index("ix_run_created_at", "created_at"),
        Index("ix_run_experiment", "experiment_id", "created_at"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name="ck_run_status"
        ),
        CheckConstraint("mode IN ('sync', 'async')", name="ck_run_mode"),
    )

    id: str = Field(primary_key=True, max_length=64)  # the engine's run id (32 hex digits)
    workflow: str = Field(max_length=200)
    version: str = Field(max_length=100)
    digest: str | None = Field(default=None, max_length=80)
    label: str | None = Field(default=None, max_length=100)
    user_id: str | None = Field(default=None, max_length=200)
    mode: str = Field(default="sync", max_length=8)
    status: str = Field(max_length=16)
    reason: str = Field(max_length=64)  # pin | label | rollout bucket N | random
    input: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    outputs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    cost_usd: float = 0.0
    latency_s: float | None = None
    attempt: int = 1
    # The experiment that routed this run, its arm (the version) and the ramp step it was in.
    experiment_id: int | None = Field(default=None, foreign_key="experiment.id")
    arm: str | None = Field(default=None, max_length=100)
    experiment_step: int | None = None
    created_at: datetime = _ts()
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    deadline_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class RunTraceRow(SQLModel, table=True):
    """The trace (``Trace.to_json()``) of one attempt of a run, apart from the run row so that
    listing runs never reads the larger trace documents."""

    __tablename__ = "run_trace"

    run_id: str = Field(
        sa_column=Column(String(64), ForeignKey("run.id"), primary_key=True, nullable=False)
    )
    attempt: int = Field(
        default=1, sa_column=Column(Integer, primary_key=True, autoincrement=False)
    )
    trace: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class RunStepRow(SQLModel, table=True):
    """A completed step of a run that may be resumed: the engine's cache entry (encoded
    ``CachedStep``) under the engine's step key. Kept while the run can still be resumed."""

    __tablename__ = "run_step"

    run_id: str = Field(
        sa_column=Column(String(64), ForeignKey("run.id"), primary_key=True, nullable=False)
    )
    key: str = Field(sa_column=Column(String(128), primary_key=True, nullable=False))
    value: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()


class ApiKeyRow(SQLModel, table=True):
    """An API key: its name (the actor in audit rows), role, and a hash, never the key itself.

    ``key_prefix`` is the random part after ``rg_`` that is shown in listings and finds the row
    without a scan; ``key_hash`` is the SHA-256 of the whole key. Revoked keys keep their row
    and name, so an audit row's actor always names one key.
    """

    __tablename__ = "api_key"
    __table_args__ = (
        UniqueConstraint("name", name="uq_api_key_name"),
        Index("ix_api_key_prefix", "key_prefix"),
        CheckConstraint("role IN ('admin', 'runner', 'viewer')", name="ck_api_key_role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    role: str = Field(max_length=16)
    key_prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64)
    created_at: datetime = _ts()
    created_by: str = Field(max_length=200)
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class IdempotencyKeyRow(SQLModel, table=True):
    """A client's ``Idempotency-Key`` on ``POST /v1/run``, scoped to the caller (``principal``
    is the API key's name): claimed (``in_progress``) before the run, ``done`` with the stored
    response in the transaction that stores the run. ``request_hash`` is the SHA-256 of the
    request's canonical JSON, so a key reused for another request is refused.

    ``run_id`` names the run without a foreign key, like runs name their version: a fact.
    """

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("principal", "key", name="uq_idempotency_key_principal_key"),
        CheckConstraint("status IN ('in_progress', 'done')", name="ck_idempotency_key_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=200)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    status: str = Field(default="in_progress", max_length=16)
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = _ts()
    # An in-progress claim older than this belongs to a request that died with its process
    # (the run's deadline has passed): another request with the key may take it over.
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ExperimentRow(SQLModel, table=True):
    """An experiment on a label: while ``running`` it routes the label's traffic between the
    ``baseline`` version and the candidate ``arms`` (shares of the current ramp step), sticky by
    user id under its own ``salt``; ``config`` holds the metrics, guardrails, alpha, method, ramp
    and rules (``ExperimentCreate``), fixed at creation."""

    __tablename__ = "experiment"
    __table_args__ = (
        Index("ix_experiment_label", "workflow_id", "label", "status"),
        CheckConstraint(
            "status IN ('running', 'stopped', 'promoted', 'rolled_back')",
            name="ck_experiment_status",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: int = Field(foreign_key="workflow.id")
    label: str = Field(max_length=100)
    name: str = Field(max_length=200)
    status: str = Field(default="running", max_length=16)
    salt: str = Field(max_length=64)
    baseline: str = Field(max_length=100)
    # [{"version": "v3.3", "share": 0.1}]: the candidates' shares at the current step.
    arms: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    step: int = 0
    step_started_at: datetime = _ts()
    created_at: datetime = _ts()
    created_by: str = Field(max_length=200)
    ended_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ExperimentDecisionRow(SQLModel, table=True):
    """One evaluation of an experiment that decided something new or acted: the action the
    analysis chose, what was done (``applied``: ramp, rollback, promote, or none), the reasons in
    words and codes, and the statistics they rest on."""

    __tablename__ = "experiment_decision"
    __table_args__ = (Index("ix_experiment_decision_experiment", "experiment_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id")
    at: datetime = _ts()
    step: int
    action: str = Field(max_length=16)
    applied: str | None = Field(default=None, max_length=32)
    reasons: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    statistics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ArmStatRow(SQLModel, table=True):
    """Sufficient statistics of one metric in one arm at one ramp step, updated as runs and
    outcomes arrive: ``n`` observations, their ``total`` and ``total_sq`` (for a proportion,
    ``total`` counts successes). An analysis reads these rows, never the runs."""

    __tablename__ = "arm_stat"
    __table_args__ = (CheckConstraint("kind IN ('proportion', 'mean')", name="ck_arm_stat_kind"),)

    experiment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("experiment.id"), primary_key=True, nullable=False)
    )
    step: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    arm: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    metric: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    kind: str = Field(max_length=16)
    n: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    total: float = 0.0
    total_sq: float = 0.0


class MetricRow(SQLModel, table=True):
    """A metric's kind per workflow, fixed by its first outcome (or by an experiment naming it),
    so a value of the wrong type is refused rather than mixed into the statistics."""

    __tablename__ = "metric"
    __table_args__ = (CheckConstraint("kind IN ('proportion', 'mean')", name="ck_metric_kind"),)

    workflow_id: int = Field(
        sa_column=Column(Integer, ForeignKey("workflow.id"), primary_key=True, nullable=False)
    )
    name: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    kind: str = Field(max_length=16)


class OutcomeRow(SQLModel, table=True):
    """What happened after a run, per metric: recorded once (a repeat with the same value is a
    no-op; another value is refused)."""

    __tablename__ = "outcome"

    run_id: str = Field(
        sa_column=Column(String(64), ForeignKey("run.id"), primary_key=True, nullable=False)
    )
    metric: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    value: float
    recorded_at: datetime = _ts()
