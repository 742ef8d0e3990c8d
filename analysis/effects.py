"""Effect estimates of a candidate against the baseline, and their variances.

Two effects, both computed from per-arm means and variances only:

- the **absolute** effect, the difference in means m_c − m_b, with
  Var = v_c/n_c + v_b/n_b (independent arms);
- the **relative** effect, (m_c − m_b)/|m_b|: the change as a fraction of the baseline's
  magnitude. For a positive baseline it is m_c/m_b − 1; on |m_b| so that its sign is always the
  sign of the difference (with m_c/m_b − 1, a baseline of −10 falling to −20 would read +100 %).
  Its variance is by the first-order (multivariate) delta method (Casella & Berger,
  *Statistical Inference*, 2nd ed., §5.5.4) for the ratio of two independent means, the form
  Deng, Knoblich & Lu use for percent change ("Applying the Delta Method in Metric Analytics",
  KDD 2018); the sign of m_b drops out of the square::

      Var ≈ Var(m_c)/m_b² + m_c²·Var(m_b)/m_b⁴ = (se_c/|m_b|)² + (m_c/|m_b| · se_b/|m_b|)²

  computed in the right-hand form, ratios before squares, so means near 1e150 do not overflow
  (m_b⁴ would) and read as a ratio, not as "no baseline".

A proportion's per-observation variance is the Bernoulli p(1 − p) (what the Wald z-test and the
normal approximation use); a numeric metric's is the sample variance (divisor n − 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from analysis.stats import MeanStats, MetricStats

__all__ = ["Alternative", "Effect", "Moments", "effect", "moments"]

Alternative = Literal["two-sided", "greater", "less"]
"""H1 about ``effect − null``: ≠ 0, > 0 or < 0 (on the comparison's ``scale``)."""


@dataclass(frozen=True, slots=True)
class Moments:
    """One arm reduced to what the tests need: n, mean, per-observation variance. ``pooled``
    marks a variance pooled over both arms (``analysis.degenerate``): Welch's degrees of freedom
    then become Student's n_b + n_c − 2."""

    n: int
    mean: float
    variance: float
    pooled: bool = False


def moments(stats: MetricStats) -> Moments | None:
    """The arm's moments, or ``None`` when it has no observations.

    Below two observations a numeric metric has no sample variance; it reads as 0 here and the
    tests refuse such arms (``too_few_runs``) before using it.
    """
    if stats.n == 0:
        return None
    if isinstance(stats, MeanStats):
        # a defect (``stats.defect``) is refused by ``compare`` before these are used
        return Moments(stats.n, stats.center, stats.variance or 0.0)
    p = stats.successes / stats.n
    return Moments(stats.n, p, p * (1.0 - p))


@dataclass(frozen=True, slots=True)
class Effect:
    """The effects and the variances of their estimates; relative ones are ``None`` when the
    baseline mean is 0 (a ratio to nothing)."""

    difference: float
    variance: float
    relative: float | None
    relative_variance: float | None


def effect(baseline: Moments, candidate: Moments) -> Effect:
    """Absolute and relative effect of ``candidate`` over ``baseline`` with their variances.

    Results may overflow to ±inf for absurd magnitudes; callers check finiteness (Python float
    arithmetic overflows to inf silently, and ``x * x`` is used instead of ``x ** 2``, which
    raises ``OverflowError``).
    """
    var_b = baseline.variance / baseline.n  # Var(m_b)
    var_c = candidate.variance / candidate.n  # Var(m_c)
    difference = candidate.mean - baseline.mean
    scale = abs(baseline.mean)
    if scale == 0:  # no ratio to nothing
        return Effect(difference, var_b + var_c, None, None)
    relative = difference / scale
    se_c, se_b = math.sqrt(var_c) / scale, math.sqrt(var_b) / scale
    ratio_se_b = candidate.mean / scale * se_b
    relative_variance = se_c * se_c + ratio_se_b * ratio_se_b
    if not (math.isfinite(relative) and math.isfinite(relative_variance)):
        return Effect(difference, var_b + var_c, None, None)
    return Effect(difference, var_b + var_c, relative, relative_variance)
