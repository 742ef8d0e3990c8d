"""How many runs an experiment needs to detect a given effect: the fixed-horizon sample size.

Normal approximation for two independent arms (Chow, Shao & Wang, *Sample Size Calculations in
Clinical Research*, 2nd ed., 2008, §3.2 for means and §4.2 for proportions), generalised to an
allocation where the candidate gets a share π of the two arms' runs::

    N = (z₁₋α′ + z_power)² · (σ_b²/(1 − π) + σ_c²/π) / δ²,   n_b = (1 − π)N,  n_c = πN

with α′ = α/2 two-sided, α one-sided, and δ the absolute minimum detectable effect (a relative
MDE is δ = MDE × baseline). Means take one standard deviation for both arms. Proportions take the
*unpooled* variances σ_b² = p_b(1 − p_b), σ_c² = p_c(1 − p_c) with p_c = p_b + δ: the variance
the decision module's z-test and confidence sequence use, not statsmodels' arcsine effect size
(Cohen's h), which agrees to within a few percent for rates away from 0 and 1.

The result is for the fixed-horizon test. A sequential test looked at continuously needs more
runs at its worst and fewer when the effect is larger than the MDE; ``benchmarks.analysis``
measures it for one case. The decision module uses this figure in its "continue" messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import special

from analysis.comparison import Alternative

__all__ = ["PowerReason", "SampleSize", "runs_for_mean", "runs_for_proportion"]

PowerReason = Literal[
    "ok",
    "invalid_parameter",  # alpha, power or the share outside (0, 1), a non-finite input
    "zero_effect",  # an MDE of 0 (or so small its square underflows): no sample suffices
    "zero_variance",  # no spread: any sample detects any effect; nothing to size
    "baseline_zero",  # a relative MDE on a baseline of 0
    "rate_out_of_range",  # a baseline rate, or baseline + MDE, outside [0, 1]
    "not_finite",  # the required sample size exceeds floating point
]


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Runs per arm for the test to reach ``power``; numbers are ``None`` unless ``ok``."""

    reason: PowerReason
    method: str
    baseline_runs: int | None = None
    candidate_runs: int | None = None
    total_runs: int | None = None
    absolute_effect: float | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def _size(
    method: str,
    var_b: float,
    var_c: float,
    delta: float,
    alpha: float,
    power: float,
    alternative: Alternative,
    share: float,
) -> SampleSize:
    if not (0 < alpha < 1 and 0 < power < 1 and 0 < share < 1 and math.isfinite(delta)):
        return SampleSize("invalid_parameter", method)
    if alternative not in ("two-sided", "greater", "less"):
        return SampleSize("invalid_parameter", method)
    if delta * delta == 0:
        return SampleSize("zero_effect", method)
    if var_b <= 0 and var_c <= 0:
        return SampleSize("zero_variance", method, absolute_effect=delta)
    tail = alpha / 2 if alternative == "two-sided" else alpha
    z = -float(special.ndtri(tail)) + float(special.ndtri(power))
    total = z * z * (var_b / (1 - share) + var_c / share) / (delta * delta)
    if not math.isfinite(total) or total > 1e18:
        return SampleSize("not_finite", method, absolute_effect=delta)
    # round first so a float that lands a hair above an integer does not ask for one more run
    n_b = max(2, math.ceil(round((1 - share) * total, 9)))
    n_c = max(2, math.ceil(round(share * total, 9)))
    return SampleSize("ok", method, n_b, n_c, n_b + n_c, delta)


def runs_for_mean(
    *,
    baseline_mean: float,
    baseline_std: float,
    mde: float,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    candidate_share: float = 0.5,
) -> SampleSize:
    """Runs to detect a change of ``mde`` in a numeric metric (``relative``: a fraction of the
    baseline mean, 0.05 = 5 %) whose standard deviation is ``baseline_std`` in both arms."""
    method = "normal_means"
    if not (math.isfinite(baseline_mean) and math.isfinite(baseline_std) and baseline_std >= 0):
        return SampleSize("invalid_parameter", method)
    if relative and baseline_mean == 0:
        return SampleSize("baseline_zero", method)
    delta = mde * baseline_mean if relative else mde
    variance = baseline_std * baseline_std
    return _size(method, variance, variance, delta, alpha, power, alternative, candidate_share)


def runs_for_proportion(
    *,
    baseline_rate: float,
    mde: float,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    candidate_share: float = 0.5,
) -> SampleSize:
    """Runs to detect a change of ``mde`` in a success rate: absolute (0.01 = one point) or
    ``relative`` (0.2 = 20 % of the baseline rate); its sign says which way (it matters: the
    variance p(1 − p) differs on each side)."""
    method = "normal_proportions_unpooled"
    if not (0 <= baseline_rate <= 1 and math.isfinite(mde)):
        return SampleSize(
            "rate_out_of_range" if math.isfinite(mde) else "invalid_parameter", method
        )
    if relative and baseline_rate == 0:
        return SampleSize("baseline_zero", method)
    delta = mde * baseline_rate if relative else mde
    rate = baseline_rate + delta
    if not 0 <= rate <= 1:
        return SampleSize("rate_out_of_range", method, absolute_effect=delta)
    var_b = baseline_rate * (1 - baseline_rate)
    var_c = rate * (1 - rate)
    return _size(method, var_b, var_c, delta, alpha, power, alternative, candidate_share)
