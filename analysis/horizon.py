"""The planned sample size of a fixed-horizon experiment, and the gate that holds its decisions
until it is reached.

A fixed-horizon test (``method: fixed``) controls its error rate only when it is read once, at
the sample size planned for it: read every 30 s and acted on, about 30 % of A/A experiments
decide falsely. So before the horizon a fixed experiment reports and never acts. The horizon is
the runs per arm that a two-sided test at the spec's alpha detects the primary metric's ``mde``
with 80 % power (``analysis.power``: normal approximation for two proportions or two means),
with the baseline's observed rate or standard deviation plugged in, the standard plug-in
planning when the baseline is not known in advance. The sizes count the metric's units: users
when the store reports per-user statistics (a rate over users who ran several times is planned
from the spread of its linearised values, as a mean), runs otherwise. The sequential method
needs none of this: its p-values are valid at every look.

At the horizon the test is read once and its verdict is final (``Decision.final``), including
"no difference found"; the evaluator ends the experiment then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from analysis.effects import moments
from analysis.power import runs_for_mean, runs_for_proportion
from analysis.spec import ExperimentSpec
from analysis.stats import ArmData, MetricStats, ProportionStats

__all__ = ["PLANNED_POWER", "Horizon", "horizon"]

PLANNED_POWER = 0.8


@dataclass(frozen=True, slots=True)
class Horizon:
    """Units per arm (users, or runs) the fixed test was planned for (``None``: it cannot be
    planned yet, e.g. the baseline has no spread to plan with), and whether every arm has
    reached it."""

    runs_per_arm: int | None
    reached: bool


def horizon(spec: ExperimentSpec, data: Mapping[str, ArmData]) -> Horizon:
    """The fixed-horizon experiment's planned runs per arm and whether each arm has them."""
    baseline: MetricStats | None = None
    found = data.get(spec.baseline.name)
    if found is not None:
        baseline = found.metrics.get(spec.primary.name)
    observed = moments(baseline) if baseline is not None else None
    if observed is None:
        return Horizon(None, False)
    planned = 0
    for arm in spec.candidates:
        share = arm.share / (arm.share + spec.baseline.share)
        if isinstance(baseline, ProportionStats):
            size = runs_for_proportion(
                baseline_rate=min(1.0, max(0.0, observed.mean)),
                mde=spec.primary.mde,
                relative=spec.primary.mde_relative,
                alpha=spec.alpha,
                power=PLANNED_POWER,
                candidate_share=share,
            )
        else:
            size = runs_for_mean(
                baseline_mean=observed.mean,
                baseline_std=observed.variance**0.5,
                mde=spec.primary.mde,
                relative=spec.primary.mde_relative,
                alpha=spec.alpha,
                power=PLANNED_POWER,
                candidate_share=share,
            )
        if size.reason != "ok" or size.baseline_runs is None or size.candidate_runs is None:
            return Horizon(None, False)
        planned = max(planned, size.baseline_runs, size.candidate_runs)
    units = [_units(data, arm.name, spec.primary.name) for arm in spec.arms]
    return Horizon(planned, all(n >= planned for n in units))


def _units(data: Mapping[str, ArmData], arm: str, metric: str) -> int:
    found = data.get(arm)
    stats = found.metrics.get(metric) if found is not None else None
    return stats.n if stats is not None else 0
