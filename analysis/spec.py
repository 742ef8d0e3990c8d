"""What an experiment promises to check, as plain frozen data: arms, metrics, thresholds.

The control plane builds an ``ExperimentSpec`` from its own records (a rollout, the metrics the
user named) and hands it, with per-arm statistics, to ``analysis.decision.decide``. Nothing here
validates by raising: ``problems`` lists what is wrong and ``decide`` halts on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from analysis.multiple import Correction

__all__ = [
    "DEFAULT_MIN_EVENTS",
    "ArmSpec",
    "Direction",
    "ExperimentSpec",
    "Guardrail",
    "Method",
    "MetricKind",
    "MetricSpec",
    "PrimaryMetric",
    "SRMMethod",
    "problems",
]

DEFAULT_MIN_EVENTS = 10.0
"""Expected events of the rarer outcome in the smaller arm before a proportion is tested
(``analysis.degenerate``): Cochran's 5, doubled because a sequential test applies the normal
approximation at every look."""

MetricKind = Literal["mean", "proportion"]
Direction = Literal["increase", "decrease"]
"""Which way is good: "increase" for a success rate or a rating, "decrease" for latency, cost."""
Method = Literal["fixed", "sequential"]
SRMMethod = Literal["chi_square", "sequential"]
"""The sample ratio check: Pearson's chi-square (valid at one look) or the always-valid
Dirichlet-multinomial test (``analysis.srm_sequential``, valid at every look)."""


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """A metric the store aggregates per arm (``name`` is its key in ``ArmData.metrics``);
    ``label`` is how messages name it ("success rate")."""

    name: str
    kind: MetricKind = "proportion"
    direction: Direction = "increase"
    label: str | None = None

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True, kw_only=True)
class PrimaryMetric(MetricSpec):
    """The metric that decides promotion. ``mde`` is the smallest effect worth detecting
    (absolute, or a fraction of the baseline when ``mde_relative``): it sizes the "how many more
    runs" hints; it does not gate a decision."""

    mde: float = 0.01
    mde_relative: bool = False


@dataclass(frozen=True, kw_only=True)
class Guardrail(MetricSpec):
    """A metric that must not get worse by more than ``margin`` (absolute, or a fraction of the
    baseline when ``margin_relative``: 0.05 = 5 %). A regression beyond the margin, significant
    one-sided, rolls back; a guardrail that cannot be evaluated blocks promotion."""

    margin: float = 0.0
    margin_relative: bool = False


@dataclass(frozen=True)
class ArmSpec:
    """An arm (a workflow version) and its configured share of traffic (any positive weight)."""

    name: str
    share: float


@dataclass(frozen=True, kw_only=True)
class ExperimentSpec:
    """One experiment: a baseline, one or more candidates, and the rules of ``decide``.

    ``tuning_runs`` sets the sequential test's ρ (see ``analysis.sequential``): the total runs of
    a baseline/candidate pair at which its confidence sequence is tightest. ``min_runs_per_arm``
    is checked before any decision; it also keeps the normal approximation honest, as does
    ``min_events`` for proportions (expected events of the rarer outcome in the smaller arm,
    ``analysis.degenerate``; below it a proportion reads ``too_few_events`` and decides nothing).
    ``correction`` is the multiple-comparison adjustment of primary and secondary comparisons
    (``analysis.multiple``). ``guardrail_correction`` (on by default) Holm-adjusts the
    one-sided p-values of the guardrails whose margin is 0, across those guardrails and the
    candidates, so together they roll an A/A experiment back with probability at most alpha
    (``analysis.decision``, rule 4); guardrails with a margin > 0 are one-sided
    non-inferiority tests at alpha, uncorrected. ``srm_method`` picks the sample ratio check;
    ``srm_threshold`` is its alarm level for either.
    """

    baseline: ArmSpec
    candidates: tuple[ArmSpec, ...]
    primary: PrimaryMetric
    guardrails: tuple[Guardrail, ...] = ()
    secondary: tuple[MetricSpec, ...] = ()
    alpha: float = 0.05
    min_runs_per_arm: int = 100
    method: Method = "sequential"
    srm_threshold: float = 0.001
    tuning_runs: int = 10_000
    min_events: float = DEFAULT_MIN_EVENTS
    correction: Correction = "holm"
    guardrail_correction: bool = True
    srm_method: SRMMethod = "chi_square"

    @property
    def arms(self) -> tuple[ArmSpec, ...]:
        return (self.baseline, *self.candidates)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        return (self.primary, *self.guardrails, *self.secondary)


def problems(spec: ExperimentSpec) -> list[str]:
    """Why ``spec`` cannot be analysed, in words; empty when it can."""
    found: list[str] = []
    names = [arm.name for arm in spec.arms]
    if not spec.candidates:
        found.append("no candidate arm")
    if len(set(names)) != len(names):
        found.append(f"arm names repeat: {names}")
    for arm in spec.arms:
        if not (math.isfinite(arm.share) and arm.share >= 0):
            found.append(f"arm {arm.name!r} has share {arm.share}: shares are weights >= 0")
    if not 0 < sum(arm.share for arm in spec.arms) < math.inf:
        found.append("the arms' shares sum to 0")
    metric_names = [m.name for m in spec.metrics]
    if len(set(metric_names)) != len(metric_names):
        found.append(f"metric names repeat: {metric_names}")
    for metric in spec.metrics:
        if metric.kind not in get_args(MetricKind) or metric.direction not in get_args(Direction):
            found.append(
                f"metric {metric.name!r}: kind {metric.kind!r}, direction {metric.direction!r}"
            )
    for guard in spec.guardrails:
        if not (math.isfinite(guard.margin) and guard.margin >= 0):
            found.append(f"guardrail {guard.name!r}: margin {guard.margin} must be >= 0")
    if not math.isfinite(spec.primary.mde) or spec.primary.mde == 0:
        found.append(f"primary metric {spec.primary.name!r}: mde {spec.primary.mde} must be != 0")
    if not 0 < spec.alpha < 1:
        found.append(f"alpha {spec.alpha} must be in (0, 1)")
    if not 0 < spec.srm_threshold < 1:
        found.append(f"srm_threshold {spec.srm_threshold} must be in (0, 1)")
    if spec.method not in get_args(Method):
        found.append(f"method {spec.method!r} must be 'fixed' or 'sequential'")
    if spec.min_runs_per_arm < 2:
        found.append(f"min_runs_per_arm {spec.min_runs_per_arm} must be >= 2")
    if spec.tuning_runs < 1:
        found.append(f"tuning_runs {spec.tuning_runs} must be >= 1")
    if not 0 <= spec.min_events < math.inf:
        found.append(f"min_events {spec.min_events} must be a finite number >= 0")
    if spec.correction not in get_args(Correction):
        found.append(f"correction {spec.correction!r} must be 'holm' or 'benjamini_hochberg'")
    if spec.srm_method not in get_args(SRMMethod):
        found.append(f"srm_method {spec.srm_method!r} must be 'chi_square' or 'sequential'")
    return found
