"""CUPED: less variance from what each user did before the experiment.

A user's metric before exposure predicts it during the experiment, and is independent of the
arm (it was fixed before assignment). Subtracting the predictable part leaves the effect and
removes the variance the covariate explains: Deng, Xu, Kohavi & Walker, "Improving the
sensitivity of online controlled experiments by utilizing pre-experiment data" (CUPED), WSDM
2013, eq. 3–4: Ŷ_cv = Ȳ − θ(X̄ − E X), θ = Cov(Y, X)/Var(X), Var(Ŷ_cv) = Var(Ȳ)(1 − ρ²).

Users are the unit and a per-run metric is a ratio over them (``analysis.units``): its delta
method linearisation L_u = (S_u − R·N_u)/N̄ (Deng, Knoblich & Lu, "Applying the delta method in
metric analytics", KDD 2018, §4: CUPED applies to the linearised values) is the Y above, and
X_u is the unit's covariate. Per arm, from the store's sums over units (ΣX, ΣX², ΣXS, ΣXN):

    C_a    = Σ L_u (X_u − X̄_a) = (ΣXS − R_a·ΣXN) / N̄_a     (Σ L_u = 0)
    M2X_a  = ΣX² − (ΣX)²/U_a

θ is pooled over the arms, θ = Σ_a C_a / Σ_a M2X_a: the common within-arm slope, i.e. the
ANCOVA estimate (OLS of Y on X and the arm; statsmodels' ``ols("y ~ C(arm) + x")`` gives the
same adjusted difference). Each arm is then handed on as the statistics of its adjusted values
L_u − θ(X_u − X̄_a) about the adjusted mean R_a − θ(X̄_a − X̄), X̄ the mean over all the arms'
units: M2' = M2_L − 2θ·C_a + θ²·M2X_a. With every N_u = 1 this is gbstats'
``RegressionAdjustedStatistic`` (GrowthBook) given the same θ; gbstats pools θ over the joint
sample instead, which adds the between-arm term (Ȳ_c − Ȳ_b)(X̄_c − X̄_b), zero in expectation.

The covariate is the unit's mean of the same metric before the experiment started (the store
computes it at the unit's first observation). A unit without pre-exposure data has X = 0: any
function of pre-exposure data is a valid covariate, so the estimate stays unbiased, and θ
fits one slope across the two groups (less reduction than a separate indicator would give;
``covered`` counts the units with data). θ is estimated, so the variance above is asymptotic
in the units, as the delta method already is; Deng et al. (§3.3) show the effect of estimating
θ is negligible at experiment sizes.

Where the adjustment cannot be trusted the arm is left unadjusted with a stable reason:
``no_pre_data`` (no unit has any), ``no_covariate_variance`` (X constant in every arm),
``too_few_units`` (an arm under ``MIN_UNITS``: θ from a handful of units is noise),
``not_finite`` (sums no sample can have).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from analysis.effects import moments
from analysis.stats import ArmData, MetricStats
from analysis.strata import StepUnits, arm_data_over_steps
from analysis.units import MeanOverUnits, RateOverUnits, UnitStats

__all__ = [
    "MIN_UNITS",
    "CupedReason",
    "StepAdjustment",
    "VarianceReduction",
    "adjust_metric",
    "cuped_arm_data",
]

CupedReason = Literal["ok", "no_pre_data", "no_covariate_variance", "too_few_units", "not_finite"]

MIN_UNITS = 10
"""Units every arm needs in a step before θ is estimated there."""


@dataclass(frozen=True, slots=True)
class StepAdjustment:
    """One metric in one ramp step: θ (``None`` when not adjusted, with ``reason``), and the
    units with pre-exposure data among all of them."""

    reason: CupedReason
    theta: float | None
    units: int
    covered: int


@dataclass(frozen=True, slots=True)
class VarianceReduction:
    """A candidate's comparison of one metric: 1 − Var(adjusted difference)/Var(unadjusted),
    both over the combined steps (``None`` when no step was adjusted), the θ of the latest
    adjusted step and why it was not adjusted (``reason``, "ok" when it was)."""

    reason: CupedReason
    variance_reduction: float | None
    theta: float | None
    units: int
    covered: int


@dataclass(frozen=True, slots=True)
class _Arm:
    units: int
    mean_n: float
    ratio: float
    m2_l: float
    c: float
    m2_x: float
    mean_x: float
    effective: float


def _arm(sums: UnitStats) -> _Arm | None:
    values = (sums.sum_x, sums.sum_xx, sums.sum_xs, sums.sum_xn)
    if not (sums.finite and all(math.isfinite(v) for v in values)) or sums.sum_n <= 0:
        return None
    u = sums.units
    mean_n = sums.sum_n / u
    r = sums.sum_s / sums.sum_n
    m2_l = sums.sum_ss - 2.0 * r * sums.sum_sn + r * r * sums.sum_nn
    c = (sums.sum_xs - r * sums.sum_xn) / mean_n
    m2_x = sums.sum_xx - sums.sum_x * sums.sum_x / u
    effective = sums.sum_n * sums.sum_n / sums.sum_nn if sums.sum_nn > 0 else 0.0
    arm = _Arm(u, mean_n, r, max(0.0, m2_l) / (mean_n * mean_n), c, max(0.0, m2_x),
               sums.sum_x / u, effective)  # fmt: skip
    fields = (arm.ratio, arm.m2_l, arm.c, arm.m2_x, arm.mean_x)
    return arm if all(math.isfinite(v) for v in fields) else None


def adjust_metric(
    arms: Mapping[str, tuple[str, UnitStats]],
) -> tuple[dict[str, MetricStats | None], StepAdjustment]:
    """Every arm of one metric in one step, CUPED-adjusted with θ pooled over them (see the
    module docstring); unadjusted (``UnitStats.as_metric_stats``) with the reason when the
    adjustment does not apply. ``None`` for an arm whose sums no sample can have."""
    plain = {arm: sums.as_metric_stats(kind) for arm, (kind, sums) in arms.items()}
    units = sum(sums.units for _, sums in arms.values())
    covered = sum(sums.covered for _, sums in arms.values())

    def unadjusted(reason: CupedReason) -> tuple[dict[str, MetricStats | None], StepAdjustment]:
        return plain, StepAdjustment(reason, None, units, covered)

    if covered == 0:
        return unadjusted("no_pre_data")
    if len(arms) < 2 or min(sums.units for _, sums in arms.values()) < MIN_UNITS:
        return unadjusted("too_few_units")
    parts = {arm: _arm(sums) for arm, (_, sums) in arms.items()}
    if any(part is None for part in parts.values()):
        return unadjusted("not_finite")
    found = {arm: part for arm, part in parts.items() if part is not None}
    m2_x = sum(part.m2_x for part in found.values())
    if not m2_x > 0:
        return unadjusted("no_covariate_variance")
    theta = sum(part.c for part in found.values()) / m2_x
    mean_x = sum(part.mean_x * part.units for part in found.values()) / units
    out: dict[str, MetricStats | None] = {}
    for arm, part in found.items():
        mean = part.ratio - theta * (part.mean_x - mean_x)
        m2 = max(0.0, part.m2_l - 2.0 * theta * part.c + theta * theta * part.m2_x)
        if not (math.isfinite(theta) and math.isfinite(mean) and math.isfinite(m2)):
            return unadjusted("not_finite")
        cls = RateOverUnits if arms[arm][0] == "proportion" else MeanOverUnits
        out[arm] = cls.over_units(part.units, mean, m2, part.effective)
    return out, StepAdjustment("ok", theta, units, covered)


def _variance_of_difference(data: Mapping[str, ArmData], a: str, b: str, metric: str) -> float:
    total = 0.0
    for arm in (a, b):
        stats = data[arm].metrics.get(metric) if arm in data else None
        m = moments(stats) if stats is not None else None
        if m is None or m.n < 2:
            return math.nan
        total += m.variance / m.n
    return total


def cuped_arm_data(
    steps: Mapping[int, StepUnits], *, baseline: str, arms: Sequence[str], step: int
) -> tuple[dict[str, ArmData], dict[tuple[str, str], VarianceReduction]]:
    """What ``decide`` reads with CUPED on: ``analysis.strata.arm_data_over_steps`` with each
    step's metrics adjusted by ``adjust_metric`` before the steps are combined, and per
    (candidate, metric) the variance reduction of its comparison with the baseline."""
    adjustments: dict[str, list[StepAdjustment]] = {}

    def convert(units: StepUnits) -> dict[str, dict[str, MetricStats | None]]:
        by_metric: dict[str, dict[str, tuple[str, UnitStats]]] = {}
        for arm, metrics in units.items():
            for metric, entry in metrics.items():
                by_metric.setdefault(metric, {})[arm] = entry
        out: dict[str, dict[str, MetricStats | None]] = {}
        for metric, entries in sorted(by_metric.items()):
            adjusted, how = adjust_metric(entries)
            adjustments.setdefault(metric, []).append(how)
            for arm, stats in adjusted.items():
                out.setdefault(arm, {})[metric] = stats
        return out

    data = arm_data_over_steps(steps, baseline=baseline, arms=arms, step=step, convert=convert)
    plain = arm_data_over_steps(steps, baseline=baseline, arms=arms, step=step)
    reductions: dict[tuple[str, str], VarianceReduction] = {}
    for metric, hows in adjustments.items():
        done = [how for how in hows if how.reason == "ok"]
        units = sum(how.units for how in hows)
        covered = sum(how.covered for how in hows)
        for arm in arms:
            if arm == baseline:
                continue
            if not done:
                reductions[(arm, metric)] = VarianceReduction(
                    hows[-1].reason, None, None, units, covered
                )
                continue
            after = _variance_of_difference(data, baseline, arm, metric)
            before = _variance_of_difference(plain, baseline, arm, metric)
            figure = 1.0 - after / before if before > 0 and math.isfinite(after) else None
            reductions[(arm, metric)] = VarianceReduction(
                "ok", figure, done[-1].theta, units, covered
            )
    return data, reductions
