"""Fixed-horizon tests: valid when the data are looked at once, at a sample size set in advance.

- **Welch's t-test** for numeric metrics (Welch 1947, "The generalization of 'Student's' problem
  when several different population variances are involved", *Biometrika* 34: 28–35): the
  statistic (m_c − m_b − δ₀)/√(v_c/n_c + v_b/n_b) against Student's t with the
  Welch–Satterthwaite degrees of freedom
  ν = (v_b/n_b + v_c/n_c)² / ((v_b/n_b)²/(n_b − 1) + (v_c/n_c)²/(n_c − 1)),
  the same figures as ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)``.
- **The two-proportion z-test** for boolean metrics (Agresti, *Categorical Data Analysis*, 3rd
  ed., §3.1, difference of proportions): the Wald statistic
  (p̂_c − p̂_b − δ₀)/√(p̂_c q̂_c/n_c + p̂_b q̂_b/n_b) against the standard normal, and the
  Wald interval. ``pooled=True`` uses the classic pooled variance p̄q̄(1/n_b + 1/n_c) for the
  p-value of H0 p_c = p_b instead (as
  ``statsmodels.stats.proportion.proportions_ztest``); the interval stays unpooled, so the test
  and the interval may then disagree at the margin: the decision module uses the unpooled form.

Where the normal approximation breaks (``analysis.degenerate``): a numeric arm without spread
makes Welch's test **Student's pooled-variance t-test** (``method="student_t"``, n_b + n_c − 2
degrees of freedom, as ``scipy.stats.ttest_ind(equal_var=True)``); two proportions with an empty
cell use the **Agresti–Caffo** interval and test (``method="agresti_caffo"``), and for H0
p_c = p_b on the absolute scale the p-value of **Fisher's exact test** (``method="fisher_exact"``,
as ``scipy.stats.fisher_exact``; the interval stays Agresti–Caffo's, so the two may disagree at
the margin; ``statistic`` is then ``None``). ``min_events`` refuses proportions with too few
expected events (``too_few_events``); 0, the default here, checks nothing.

Relative effects use the delta-method variance (``analysis.effects``) with the same reference
distribution. Peeking at these tests after every batch inflates false decisions far above alpha
(``benchmarks.analysis`` measures by how much): use ``analysis.sequential`` for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scipy import special

from analysis.comparison import Alternative, Comparison, Scale, compare
from analysis.degenerate import fisher_exact_p
from analysis.effects import Moments
from analysis.stats import MeanStats, MetricStats, ProportionStats

__all__ = ["fixed_test", "two_proportion_z_test", "welch_t_test"]


@dataclass(frozen=True, slots=True)
class _StudentT:
    df: float

    def multiplier(self, alpha: float, one_sided: bool) -> float:
        # -t(α) rather than t(1 − α): keeps precision for small alpha
        return -float(special.stdtrit(self.df, alpha if one_sided else alpha / 2))

    def p_value(self, z: float, one_sided: bool) -> float:
        tail = float(special.stdtr(self.df, -z))
        return tail if one_sided else 2.0 * tail


@dataclass(frozen=True, slots=True)
class _Normal:
    def multiplier(self, alpha: float, one_sided: bool) -> float:
        return -float(special.ndtri(alpha if one_sided else alpha / 2))

    def p_value(self, z: float, one_sided: bool) -> float:
        tail = float(special.ndtr(-z))
        return tail if one_sided else 2.0 * tail


def _welch_df(b: Moments, c: Moments) -> _StudentT:
    """Welch–Satterthwaite ν, computed on shares of the total variance so nothing overflows;
    Student's n_b + n_c − 2 for a pooled variance."""
    if b.pooled:
        return _StudentT(b.n + c.n - 2.0)
    var_b, var_c = b.variance / b.n, c.variance / c.n
    total = var_b + var_c
    share_b, share_c = var_b / total, var_c / total
    return _StudentT(1.0 / (share_b * share_b / (b.n - 1) + share_c * share_c / (c.n - 1)))


def welch_t_test(
    baseline: MeanStats,
    candidate: MeanStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    scale: Scale = "absolute",
    min_events: float = 0.0,
) -> Comparison:
    """Welch's unequal-variance t-test of candidate − baseline (``method="welch_t"``;
    ``"student_t"`` when one arm has no spread). ``min_events`` applies to ratios over units
    (``analysis.degenerate.too_few_units``).

    ``null`` is δ₀ on ``scale`` (e.g. ``null=-0.05, scale="relative", alternative="less"`` asks
    whether the candidate is more than 5 % below the baseline). Intervals are at 1 − alpha.
    """
    result = compare(
        baseline,
        candidate,
        method="welch_t",
        boundary_for=_welch_df,
        alpha=alpha,
        alternative=alternative,
        null=null,
        scale=scale,
        min_events=min_events,
    )
    return replace(result, method="student_t") if result.adjustment else result


def two_proportion_z_test(
    baseline: ProportionStats,
    candidate: ProportionStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    scale: Scale = "absolute",
    pooled: bool = False,
    min_events: float = 0.0,
) -> Comparison:
    """The two-proportion z-test of p_c − p_b (``method="two_proportion_z"``, or
    ``"two_proportion_z_pooled"`` when the pooled variance applies: ``pooled=True`` on the
    absolute scale with ``null=0``; elsewhere a pooled variance has no meaning and the Wald form
    is used). With an empty cell: ``"agresti_caffo"``, or ``"fisher_exact"`` for H0 p_c = p_b
    on the absolute scale (see the module docstring)."""
    result = compare(
        baseline,
        candidate,
        method="two_proportion_z",
        boundary_for=lambda b, c: _Normal(),
        alpha=alpha,
        alternative=alternative,
        null=null,
        scale=scale,
        min_events=min_events,
    )
    if result.ok and result.adjustment == "agresti_caffo":
        exact = None
        if scale == "absolute" and null == 0.0:
            exact = fisher_exact_p(baseline, candidate, alternative)
        if exact is None:
            return replace(result, method="agresti_caffo")
        return replace(
            result, method="fisher_exact", statistic=None, p_value=exact, significant=exact < alpha
        )
    if not (pooled and scale == "absolute" and null == 0.0 and result.ok):
        return result
    n_b, n_c = baseline.n, candidate.n
    p_bar = (baseline.successes + candidate.successes) / (n_b + n_c)
    variance = p_bar * (1.0 - p_bar) * (1.0 / n_b + 1.0 / n_c)
    if variance <= 0 or result.effect is None:  # unreachable: ok implies spread in an arm
        return result
    z = result.effect / math.sqrt(variance)
    one_sided = alternative != "two-sided"
    directed = {"two-sided": abs(z), "greater": z, "less": -z}[alternative]
    p = min(1.0, _Normal().p_value(directed, one_sided))
    return replace(
        result, method="two_proportion_z_pooled", statistic=z, p_value=p, significant=p < alpha
    )


def fixed_test(
    baseline: MetricStats,
    candidate: MetricStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    scale: Scale = "absolute",
    min_events: float = 0.0,
) -> Comparison:
    """The fixed-horizon test for the metric's kind: the unpooled z-test for two proportions
    (``min_events`` applies to them, and to ratios over units), Welch's t otherwise (a
    proportion compared with a numeric metric reads as 0/1 numbers)."""
    if isinstance(baseline, ProportionStats) and isinstance(candidate, ProportionStats):
        return two_proportion_z_test(
            baseline,
            candidate,
            alpha=alpha,
            alternative=alternative,
            null=null,
            scale=scale,
            min_events=min_events,
        )
    b = baseline.as_mean() if isinstance(baseline, ProportionStats) else baseline
    c = candidate.as_mean() if isinstance(candidate, ProportionStats) else candidate
    return welch_t_test(
        b, c, alpha=alpha, alternative=alternative, null=null, scale=scale, min_events=min_events
    )
