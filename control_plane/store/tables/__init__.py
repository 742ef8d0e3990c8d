"""The tables, one module per domain (``workflows``, ``audit``, ``rollouts``, ``runs``,
``access``, ``experiments``, ``shadows``); ``columns`` holds the allowed values of constrained
columns.

Every constraint is named so migrations and autogenerate comparisons agree on both SQLite and
PostgreSQL. Timestamps are UTC; SQLite hands them back naive, and ``kit.time.as_utc`` marks
them UTC. Importing this package registers every table on ``SQLModel.metadata``.
"""

from control_plane.store.tables.access import ApiKeyRow
from control_plane.store.tables.audit import AuditRow, RegistryStateRow
from control_plane.store.tables.columns import (
    EXPERIMENT_STATUSES,
    IDEMPOTENCY_STATUSES,
    KEY_ROLES,
    LABEL_REASONS,
    METRIC_KINDS,
    RUN_MODES,
    RUN_STATUSES,
    VERSION_STATUSES,
)
from control_plane.store.tables.experiments import (
    ArmStatRow,
    ArmUnitStatRow,
    ExperimentDecisionRow,
    ExperimentLookRow,
    ExperimentRow,
    ExperimentUnitRow,
    MetricRow,
    OutcomeRow,
)
from control_plane.store.tables.rollouts import RolloutRow
from control_plane.store.tables.runs import IdempotencyKeyRow, RunRow, RunStepRow, RunTraceRow
from control_plane.store.tables.shadows import ShadowRow
from control_plane.store.tables.workflows import LabelEventRow, LabelRow, VersionRow, WorkflowRow

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
    "ArmUnitStatRow",
    "AuditRow",
    "ExperimentDecisionRow",
    "ExperimentLookRow",
    "ExperimentRow",
    "ExperimentUnitRow",
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
    "ShadowRow",
    "VersionRow",
    "WorkflowRow",
]
