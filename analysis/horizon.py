"""The planned sample size of a fixed-horizon experiment, and the gate that holds its decisions
until it is reached.

A fixed-horizon test (``method: fixed``) controls its error rate only when it is read once, at
the sample size planned for it: read every 30 s and acted on, about 30 % of A/A experiments
decide falsely. So before the horizon a fixed experiment reports and never acts. The horizon is
the runs per arm that a two-sided test at the spec's alpha detects the primary metric's ``mde``
with 80 % power (``analysis.power``: normal approximation for two proportions or two means),
with the baseline's observed rate or standard deviation plugged in, the standard plug-in
planning when the baseline is not known in advance. The sequential method needs none of this:
its p-values are valid at every look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from analysis.effects import moments
from analysis.power import runs_for_mean, runs_for_proportion
from analysis.spec import ExperimentSpec
from analysis.stats import ArmData, MetricStats

__all__ = ["PLANNED_POWER", "Horizon", "horizon"]

PLANNED_POWER = 0.8


@dataclass(frozen=True, slots=True)
class Horizon:
    """Runs per arm the fixed test was planned for (``None``: it cannot be planned yet, e.g.
    the baseline has no spread to plan with), and whether every arm has reached it."""

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
        if spec.primary.kind == "proportion":
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
    runs = [data[a.name].runs if a.name in data else 0 for a in spec.arms]
    return Horizon(planned, all(r >= planned for r in runs))
