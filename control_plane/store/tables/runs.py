"""Runs, their traces, their completed steps (for resume) and idempotency claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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

from control_plane.store.tables.columns import (
    timestamp,
)

__all__ = ["IdempotencyKeyRow", "RunRow", "RunStepRow", "RunTraceRow"]


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
        Index("ix_run_evaluation_due", "evaluation_due_at"),
        # a user's earlier runs of a workflow: CUPED's pre-exposure covariate
        Index("ix_run_workflow_user", "workflow", "user_id", "created_at"),
        # GET /v1/runs?workflow=[&status=]: the newest runs read in index order, not sorted
        Index("ix_run_workflow_created", "workflow", "created_at"),
        Index("ix_run_workflow_status", "workflow", "status", "created_at"),
        # a served run's shadow (the comparison's pairs), and a label's shadow runs by time
        Index("ix_run_shadow_of", "shadow_of"),
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'budget_exceeded')",
            name="ck_run_status",
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
    # What the request lowered: {"budget": {...}, "deadline_s": s}; none when it lowered nothing.
    limits: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    outputs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    cost_usd: float = 0.0
    latency_s: float | None = None
    attempt: int = 1
    # The experiment that routed this run, its arm (the version) and the ramp step it was in.
    experiment_id: int | None = Field(default=None, foreign_key="experiment.id")
    arm: str | None = Field(default=None, max_length=100)
    experiment_step: int | None = None
    created_at: datetime = timestamp()
    finished_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    deadline_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # A queued run's message is on the run queue (the outbox's mark): NULL while it is stored
    # but not yet queued, so a replica that died in between leaves it for the sweep to queue.
    enqueued_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # A succeeded run whose evaluators have not run yet (runs.evaluations): set in the unit
    # that stores it, cleared in the one that stores its scores; a mark older than
    # ROLLGRAPH_EVALUATION_RETRY_S belongs to a process that stopped, and the sweep re-offers it.
    evaluation_due_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The submitting request's W3C trace context (with tracing on): whoever runs it later (a
    # worker, after the outbox sweep queued it again) continues the caller's trace.
    traceparent: str | None = Field(default=None, max_length=128)
    # A shadow run: the id of the served run whose inputs it ran on, after that run answered.
    # Its output reached no caller; it routes nothing and counts in no experiment or rollout.
    shadow_of: str | None = Field(default=None, max_length=64)


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
    created_at: datetime = timestamp()


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
        Index("ix_idempotency_key_run_id", "run_id"),  # retention deletes a run's keys
    )

    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=200)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    status: str = Field(default="in_progress", max_length=16)
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = timestamp()
    # The claim's lease: renewed by the request that holds it while its run executes, so an
    # in-progress claim past it belongs to a request that died with its process, and another
    # request with the key may take it over.
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # The token of the request that holds the claim (each takeover sets a new one): only that
    # request renews, completes or releases it.
    holder: str | None = Field(default=None, max_length=32)
