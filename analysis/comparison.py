"""One comparison of a candidate arm against the baseline, whatever the test.

Every test (Welch's t, the two-proportion z, the asymptotic confidence sequence) returns the same
``Comparison``; they differ only in their ``Boundary``: how many standard errors an interval
reaches at a level, and the p-value of a standardised statistic. ``compare`` does the rest once:
degenerate input, effects, intervals on both scales, the p-value against ``null`` on ``scale``.

Degenerate input never raises and never yields a NaN or an infinity: the result carries a stable
``reason`` and ``None`` for what cannot be computed (means stay when they exist). Where the
normal approximation breaks (rare events, an empty cell, one arm without spread) the remedies of
``analysis.degenerate`` apply first, and ``adjustment`` names the one used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol, get_args

from analysis.degenerate import Adjustment, adjust, too_few_events, too_few_units
from analysis.effects import Alternative, Moments, effect, moments
from analysis.stats import MeanStats, MetricStats, ProportionStats

__all__ = [
    "Alternative",
    "Boundary",
    "Comparison",
    "ReasonCode",
    "Scale",
    "compare",
]

Scale = Literal["absolute", "relative"]
"""What the p-value tests: the difference m_c − m_b, or the relative effect m_c/m_b − 1."""
ReasonCode = Literal[
    "ok",
    "no_data",  # neither arm has an observation
    "arm_empty",  # one arm has none
    "too_few_runs",  # an arm has a single observation: no variance
    "zero_variance",  # no spread in either arm: nothing to scale the difference by
    "too_few_events",  # proportions: too few expected events for the normal approximation
    "too_few_units",  # a ratio over units resting on too few effective units (one heavy user)
    "baseline_zero",  # relative scale asked, baseline mean 0: no ratio
    "not_finite",  # magnitudes beyond floating point, or statistics read back as inf/NaN
    "inconsistent_sums",  # stored sums no real sample can have (Σx² < (Σx)²/n)
    "invalid_parameter",  # alpha outside (0, 1), unknown alternative or scale, non-finite null
]


class Boundary(Protocol):
    """What a test contributes: critical multipliers and p-values of z = (estimate − null)/se.

    ``one_sided`` tests take z signed towards the alternative; two-sided ones take |z|.
    """

    def multiplier(self, alpha: float, one_sided: bool) -> float: ...

    def p_value(self, z: float, one_sided: bool) -> float: ...


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate against baseline: effects with intervals on both scales, and one test.

    Intervals match ``alternative``: both ends for "two-sided"; for a one-sided test the far end
    is unbounded and reads ``None`` (an interval "at least x"). ``p_value`` and ``significant``
    test H0 ``effect == null`` (on ``scale``) against ``alternative``; ``significant`` is
    ``p_value < alpha``, which for every test here is the same as ``null`` lying outside the
    interval on that scale. Relative fields are ``None`` when the baseline mean is 0; the
    relative effect is (m_c − m_b)/|m_b| (``analysis.effects``). For two proportions the
    intervals are cut to what rates allow (a difference in [−1, 1], a relative change of at
    least −100 %): the normal approximation can overshoot on small samples.

    ``effect`` and ``relative_effect`` are always the observed ones. With an ``adjustment``
    (``analysis.degenerate``) the interval and the statistic come from the adjusted moments:
    with "agresti_caffo" they centre on the adjusted rates, so the interval need not be
    centred on ``effect``.
    """

    method: str
    reason: ReasonCode
    alternative: Alternative
    scale: Scale
    null: float
    alpha: float
    n_baseline: int
    n_candidate: int
    mean_baseline: float | None = None
    mean_candidate: float | None = None
    effect: float | None = None
    std_error: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    relative_effect: float | None = None
    relative_std_error: float | None = None
    relative_ci_low: float | None = None
    relative_ci_high: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    significant: bool = False
    adjustment: Adjustment | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def _degenerate(b: Moments | None, c: Moments | None) -> ReasonCode | None:
    if b is None and c is None:
        return "no_data"
    if b is None or c is None:
        return "arm_empty"
    if b.n < 2 or c.n < 2:
        return "too_few_runs"
    if b.variance <= 0 and c.variance <= 0:
        return "zero_variance"
    return None


def _interval(
    estimate: float, se: float, mult: float, alternative: Alternative
) -> tuple[float | None, float | None]:
    half = mult * se
    low = None if alternative == "less" else estimate - half
    high = None if alternative == "greater" else estimate + half
    return low, high


def _clip(bound: float | None, low: float, high: float) -> float | None:
    return None if bound is None else min(high, max(low, bound))


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def _defect(stats: MetricStats) -> ReasonCode | None:
    return stats.defect if isinstance(stats, MeanStats) else None


def compare(
    baseline: MetricStats,
    candidate: MetricStats,
    *,
    method: str,
    boundary_for: Callable[[Moments, Moments], Boundary],
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    scale: Scale = "absolute",
    parameters_ok: bool = True,
    min_events: float = 0.0,
) -> Comparison:
    """Compare two arms with the test whose boundary ``boundary_for(baseline, candidate)`` gives.

    The shared core of ``analysis.significance`` and ``analysis.sequential``; call those.
    ``parameters_ok=False`` is how a test reports its own parameters invalid (a tuning value).
    ``min_events`` applies to two proportions (``analysis.degenerate.too_few_events``) and to
    ratios over units (``analysis.degenerate.too_few_units``).
    """
    b, c = moments(baseline), moments(candidate)
    defect = _defect(baseline) or _defect(candidate)
    base = Comparison(
        method=method,
        reason="ok",
        alternative=alternative,
        scale=scale,
        null=null,
        alpha=alpha,
        n_baseline=baseline.n,
        n_candidate=candidate.n,
        mean_baseline=baseline.mean if b is not None else None,
        mean_candidate=candidate.mean if c is not None else None,
    )
    valid = (
        parameters_ok
        and 0.0 < alpha < 1.0
        and alternative in get_args(Alternative)
        and scale in get_args(Scale)
        and math.isfinite(null)
        and 0.0 <= min_events < math.inf
    )
    if not valid:
        return replace(base, reason="invalid_parameter")
    if defect is not None:  # damaged statistics: the finite means stand, nothing else
        return replace(base, reason=defect)
    reason = _degenerate(b, c)
    rates = isinstance(baseline, ProportionStats) and isinstance(candidate, ProportionStats)
    if reason is None and scale == "relative" and b is not None and b.mean == 0:
        reason = "baseline_zero"  # no ratio to nothing, however many events
    if (
        reason is None
        and isinstance(baseline, ProportionStats)
        and isinstance(candidate, ProportionStats)
        and too_few_events(baseline, candidate, min_events)
    ):
        reason = "too_few_events"
    if reason is None and too_few_units(baseline, candidate, min_events):
        reason = "too_few_units"
    if reason is not None or b is None or c is None:
        difference = None if b is None or c is None else c.mean - b.mean
        if not _finite(difference):
            return replace(base, reason="not_finite")
        # Too few runs, events or no spread: the means and their difference stand, tests do not.
        return replace(base, reason=reason or "no_data", effect=difference)
    observed = effect(b, c)
    tested_b, tested_c, adjustment = adjust(baseline, candidate, b, c)
    est = effect(tested_b, tested_c)
    if not _finite(observed.difference, est.difference, est.variance) or est.variance <= 0:
        return replace(base, reason="not_finite")
    boundary = boundary_for(tested_b, tested_c)
    one_sided = alternative != "two-sided"
    mult = boundary.multiplier(alpha, one_sided)
    se = math.sqrt(est.variance)
    low, high = _interval(est.difference, se, mult, alternative)
    if rates:  # a difference of rates lies in [−1, 1]: cutting the interval there loses nothing
        low, high = _clip(low, -1.0, 1.0), _clip(high, -1.0, 1.0)
    rel_se = rel_low = rel_high = None
    has_ratio = observed.relative is not None  # no ratio to a zero baseline, adjusted or not
    if has_ratio and est.relative is not None and est.relative_variance is not None:
        rel_se = math.sqrt(est.relative_variance)
        rel_low, rel_high = _interval(est.relative, rel_se, mult, alternative)
        if rates:  # a rate cannot fall below 0, so the relative change cannot fall below −100 %
            rel_low, rel_high = _clip(rel_low, -1.0, math.inf), _clip(rel_high, -1.0, math.inf)
    if scale == "relative" and rel_se is None:
        missing: ReasonCode = "baseline_zero" if b.mean == 0 else "not_finite"
        return replace(base, reason=missing, effect=observed.difference, adjustment=adjustment)
    if scale == "relative" and rel_se == 0:  # a zero candidate mean with no spread
        return replace(base, reason="zero_variance", effect=observed.difference)
    estimate, scale_se = (est.relative, rel_se) if scale == "relative" else (est.difference, se)
    assert estimate is not None  # narrowed above
    assert scale_se is not None
    z = (estimate - null) / scale_se
    directed = {"two-sided": abs(z), "greater": z, "less": -z}[alternative]
    p = min(1.0, max(0.0, boundary.p_value(directed, one_sided)))
    out = replace(
        base,
        effect=observed.difference,
        std_error=se,
        ci_low=low,
        ci_high=high,
        relative_effect=observed.relative,
        relative_std_error=rel_se,
        relative_ci_low=rel_low,
        relative_ci_high=rel_high,
        statistic=z,
        p_value=p,
        significant=p < alpha,
        adjustment=adjustment,
    )
    numbers = (se, low, high, observed.relative, rel_se, rel_low, rel_high, z, p, mult)
    if not _finite(*numbers):
        return replace(base, reason="not_finite")
    return out
