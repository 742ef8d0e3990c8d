"""Experiments, their decisions, per-arm sufficient statistics, metrics and outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlmodel import Field, SQLModel

from control_plane.store.tables.columns import (
    timestamp,
)

__all__ = [
    "ArmStatRow",
    "ArmUnitStatRow",
    "ExperimentDecisionRow",
    "ExperimentLookRow",
    "ExperimentRow",
    "ExperimentUnitRow",
    "MetricRow",
    "OutcomeRow",
]


class ExperimentRow(SQLModel, table=True):
    """An experiment on a label: while ``running`` it routes the label's traffic between the
    ``baseline`` version and the candidate ``arms`` (shares of the current ramp step), sticky by
    user id under its own ``salt``; ``config`` holds the metrics, guardrails, alpha, method, ramp
    and rules (``ExperimentCreate``), fixed at creation.

    ``halted``: the evaluator found the numbers untrustworthy (``halt_reasons``, since
    ``halted_at``); traffic stays split as it was and ramps and rules wait until a person
    resumes it (back to ``running``; the reason codes resumed past are ``acknowledged`` and halt
    it no more) or stops it."""

    __tablename__ = "experiment"
    __table_args__ = (
        Index("ix_experiment_label", "workflow_id", "label", "status"),
        CheckConstraint(
            "status IN ('running', 'halted', 'stopped', 'promoted', 'rolled_back')",
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
    step_started_at: datetime = timestamp()
    created_at: datetime = timestamp()
    created_by: str = Field(max_length=200)
    ended_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    halted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    # [{"code", "message", "arm", "metric"}]: why it halted (kept when it is stopped halted).
    halt_reasons: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    acknowledged: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ExperimentDecisionRow(SQLModel, table=True):
    """One evaluation of an experiment that decided something new or acted: the action the
    analysis chose, what was done (``applied``: ramp, rollback, promote, or none), the reasons in
    words and codes, and the statistics they rest on."""

    __tablename__ = "experiment_decision"
    __table_args__ = (Index("ix_experiment_decision_experiment", "experiment_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id")
    at: datetime = timestamp()
    step: int
    action: str = Field(max_length=16)
    applied: str | None = Field(default=None, max_length=32)
    reasons: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    statistics: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ExperimentLookRow(SQLModel, table=True):
    """One look at a running experiment whose data had changed since the previous look: per
    candidate and metric the effect and its interval (always-valid when sequential) and
    p-values, so a chart can show how they narrowed over time and where they crossed the
    threshold. A decision row is written only when something new was decided; this one every
    look with new data."""

    __tablename__ = "experiment_look"
    __table_args__ = (Index("ix_experiment_look_experiment", "experiment_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id")
    at: datetime = timestamp()
    step: int
    action: str = Field(max_length=16)
    # the total observations over arms and metrics: a look whose count did not move is not news
    observations: int = Field(sa_column=Column(BigInteger, nullable=False))
    rows: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))


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


class ExperimentUnitRow(SQLModel, table=True):
    """One unit's (a user's, or a run's without a user id) running count ``n`` and ``total`` of
    one metric in one arm at one ramp step: what the arm's sums over units are updated from."""

    __tablename__ = "experiment_unit"

    experiment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("experiment.id"), primary_key=True, nullable=False)
    )
    step: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    arm: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    metric: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    unit: str = Field(sa_column=Column(String(256), primary_key=True, nullable=False))
    n: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    total: float = 0.0
    # CUPED's pre-exposure covariate: the unit's mean of the metric before the experiment
    # started (0 without any), fixed at its first observation; NULL when not computed.
    covariate: float | None = Field(default=None, sa_column=Column(Float, nullable=True))


class ArmUnitStatRow(SQLModel, table=True):
    """Sufficient statistics over units of one metric in one arm at one ramp step: ``units``,
    and over them the sums of each unit's count N and total S, of N², S² and S·N. A per-run
    metric is the ratio ΣS/ΣN, analysed with users, not runs, as the independent units."""

    __tablename__ = "arm_unit_stat"
    __table_args__ = (
        CheckConstraint("kind IN ('proportion', 'mean')", name="ck_arm_unit_stat_kind"),
    )

    experiment_id: int = Field(
        sa_column=Column(Integer, ForeignKey("experiment.id"), primary_key=True, nullable=False)
    )
    step: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    arm: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    metric: str = Field(sa_column=Column(String(100), primary_key=True, nullable=False))
    kind: str = Field(max_length=16)
    units: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    sum_n: float = 0.0
    sum_s: float = 0.0
    sum_nn: float = 0.0
    sum_ss: float = 0.0
    sum_sn: float = 0.0
    # Over units, with X each unit's covariate: ΣX, ΣX², ΣX·S, ΣX·N (``analysis.cuped``), and
    # the units that had pre-exposure data.
    sum_x: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    sum_xx: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    sum_xs: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    sum_xn: float = Field(default=0.0, sa_column=Column(Float, nullable=False, server_default="0"))
    covered: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )


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
    recorded_at: datetime = timestamp()
    # An evaluator's score (eval.NAME) keeps how it was reached: a judge's reasoning, a check's
    # failed conditions, the evaluation's cost. A client's outcome has none.
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
