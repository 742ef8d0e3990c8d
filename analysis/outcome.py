"""What ``decide`` returns: the action, its reasons (a code and words), and every number.

Plain frozen data, so the control plane can store it, render it, or turn it into JSON without
knowing any statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from analysis.comparison import Comparison
from analysis.srm import SRMResult

__all__ = ["Action", "Decision", "MetricResult", "Reason", "ReasonCode", "Role"]

Action = Literal["promote", "rollback", "continue", "halt"]
Role = Literal["primary", "guardrail", "secondary"]
ReasonCode = Literal[
    "invalid_spec",  # halt: the spec or the data's types cannot be analysed
    "srm",  # halt: sample ratio mismatch
    "no_data",  # halt: an arm has no runs
    "metric_no_data",  # halt: an arm has runs but no observation of a required metric
    "below_min_runs",  # continue: an arm is under the minimum runs per arm
    "guardrail_regression",  # rollback: a guardrail is worse beyond its margin
    "primary_worse",  # rollback: the primary metric is significantly worse
    "primary_better",  # promote: the winner
    "guardrail_not_evaluable",  # continue: a would-be winner's guardrail cannot be checked
    "primary_not_evaluable",  # continue: the primary comparison is degenerate (zero variance,
    # too few events, damaged statistics…)
    "inconclusive",  # continue: not significant yet
    "before_horizon",  # continue: a fixed-horizon test has not reached its planned runs
    "at_horizon",  # continue, final: a fixed-horizon test reached its size without a verdict
]


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason for the action: a stable ``code`` for machines, a ``message`` for people."""

    code: ReasonCode
    message: str
    arm: str | None = None
    metric: str | None = None


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric in one arm. A candidate carries its ``comparison`` with the baseline;
    ``adjusted_p`` is the spec's correction's (Holm's by default) for primary and secondary
    metrics, and Holm's across the margin-0 guardrails (``guardrail_correction``); ``None`` for
    a guardrail with a margin. ``significant`` is the verdict the rules use: significant after
    the correction for primary and secondary metrics, a regression beyond the margin (after
    Holm, for margin 0) for a guardrail."""

    arm: str
    metric: str
    role: Role
    n: int
    mean: float | None
    comparison: Comparison | None = None
    adjusted_p: float | None = None
    significant: bool = False

    @property
    def effect(self) -> float | None:
        return None if self.comparison is None else self.comparison.effect

    @property
    def p_value(self) -> float | None:
        return None if self.comparison is None else self.comparison.p_value


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict. ``winner`` names the arm to promote (``None`` unless ``action`` is
    "promote"); ``srm`` is ``None`` only when the spec could not be analysed. ``final`` is
    True when the verdict must not be looked at again: a fixed-horizon test at its planned
    sample size is read once, so whatever it says then (promote, roll back, or "continue",
    which means no difference was found) ends the experiment; reading it again at every later
    look would be peeking by another name."""

    action: Action
    reasons: tuple[Reason, ...]
    results: tuple[MetricResult, ...]
    srm: SRMResult | None
    method: str
    winner: str | None = None
    final: bool = False

    @property
    def codes(self) -> tuple[ReasonCode, ...]:
        return tuple(reason.code for reason in self.reasons)

    @property
    def summary(self) -> str:
        """All reasons as one paragraph."""
        return " ".join(reason.message for reason in self.reasons)

    def result(self, arm: str, metric: str) -> MetricResult | None:
        """The result of ``metric`` in ``arm``, if analysed."""
        return next((r for r in self.results if r.arm == arm and r.metric == metric), None)
