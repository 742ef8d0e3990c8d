"""Where the normal approximation breaks: rare events, empty cells, an arm without spread.

Every test in this package divides a difference by its estimated standard error. Three kinds of
data make that estimate worthless, and each has its own remedy, applied by
``analysis.comparison.compare`` before any test:

- **Too few events.** With a handful of successes (or failures) in an arm, its rate and the
  variance estimated from it swing together, and the z-statistic is far from normal: a small
  candidate share with a rare event rolls back falsely well above alpha. The check is the
  expected count of the rarer outcome in the smaller arm under the pooled rate,
  min(n_b, n_c)·min(p̄, 1 − p̄) with p̄ = (x_b + x_c)/(n_b + n_c), against ``min_events``;
  below it a proportion is not tested (reason ``too_few_events``). This is Cochran's rule for
  the normal approximation of a 2×2 table, expected counts of at least 5 (Cochran 1954, "Some
  methods for strengthening the common χ² tests", *Biometrics* 10(4): 417–451);
  ``ExperimentSpec.min_events`` defaults to 10 because the sequential test leans on the
  approximation at every look. Pooled, not observed: a candidate with no success at all
  against a baseline converting 30 % has plenty of expected events, and is tested.
- **An empty cell**: an arm with no success, or no failure. Its Bernoulli variance p̂(1 − p̂) is
  0, so the Wald statistic rests on the other arm's variance alone (0/100 against 57/1,900
  reads z ≈ 7.7, p ≈ 1e-14). The comparison then uses the **Agresti–Caffo** adjustment: one
  success and one failure added to each arm, p̃ = (x + 1)/(n + 2) over n + 2 trials, in the
  same Wald form (Agresti & Caffo 2000, "Simple and effective confidence intervals for
  proportions and differences of proportions result from adding two successes and two
  failures", *The American Statistician* 54(4): 280–288; statsmodels'
  ``confint_proportions_2indep(method="agresti-caffo")``). The adjustment vanishes as n grows,
  so the sequential test's asymptotic guarantee is unchanged. The fixed-horizon test of equality
  takes its p-value from Fisher's exact test instead (below).
- **A numeric arm without spread** while the other has some: Welch's test would use the other
  arm's variance alone, so a small constant sample (five zero costs) reads as certainty. Both
  arms then get the pooled variance s² = (M2_b + M2_c)/(n_b + n_c − 2) with n_b + n_c − 2
  degrees of freedom: Student's two-sample t-test (Student 1908, "The probable error of a
  mean", *Biometrika* 6(1): 1–25, in the two-sample form of Fisher's *Statistical Methods for
  Research Workers*, 1925; scipy's ``ttest_ind(equal_var=True)``). It is valid under the null
  that both arms share one distribution, and no spread in one arm alone is then no evidence.
- **A ratio over few effective units**: a per-run metric over users who ran many times rests on
  Kish's effective number of units, not on U (``analysis.units``); below ``min_events`` of them
  (expected events among them, for a rate) it is not tested (``too_few_units``).

**Fisher's exact test** (Fisher, *Statistical Methods for Research Workers*, 5th ed., 1934,
§21.02): given both margins of the 2×2 table, the candidate's successes are hypergeometric;
the two-sided p-value sums the probabilities of every table no more probable than the one
observed (relative tolerance 1e-7, as R's ``fisher.test``), a one-sided one sums the tail.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import special
from scipy import stats as sps

from analysis.effects import Alternative, Moments
from analysis.stats import MetricStats, ProportionStats
from analysis.units import RateOverUnits, effective_units

__all__ = [
    "Adjustment",
    "adjust",
    "agresti_caffo",
    "fisher_exact_p",
    "has_empty_cell",
    "pooled",
    "too_few_events",
    "too_few_units",
]

Adjustment = Literal["agresti_caffo", "pooled_variance"]

# Tables whose hypergeometric support (near its mode and the observation) exceeds this many
# values are summed no further: there every margin is in the tens of thousands and the normal
# approximation (Agresti–Caffo) is as good as exact, at a fraction of the cost.
_EXACT_SUPPORT = 20_000
_TIE = math.log1p(1e-7)


def too_few_events(b: ProportionStats, c: ProportionStats, min_events: float) -> bool:
    """Whether the smaller arm expects fewer than ``min_events`` of the rarer outcome under the
    pooled rate (see the module docstring). Integer arithmetic: exact at any n."""
    if min_events <= 0:
        return False
    n = b.n + c.n
    k = b.successes + c.successes
    return min(b.n, c.n) * min(k, n - k) < min_events * n


def too_few_units(b: MetricStats, c: MetricStats, min_events: float) -> bool:
    """Whether a ratio over units rests on too few of them (``analysis.units``): for a rate,
    fewer than ``min_events`` expected events of the rarer outcome among the smaller arm's
    effective units under the pooled rate (``too_few_events`` with units for trials); for a
    mean, fewer effective units than ``min_events``. Statistics that are not ratios over units
    pass."""
    e_b, e_c = effective_units(b), effective_units(c)
    if min_events <= 0 or (e_b is None and e_c is None):
        return False
    e_b = float(b.n) if e_b is None else e_b
    e_c = float(c.n) if e_c is None else e_c
    rates = (RateOverUnits, ProportionStats)
    if not (isinstance(b, rates) and isinstance(c, rates)):
        return min(e_b, e_c) < min_events
    m_b, m_c = b.mean or 0.0, c.mean or 0.0
    pooled_rate = (e_b * m_b + e_c * m_c) / (e_b + e_c) if e_b + e_c > 0 else 0.0
    return min(e_b, e_c) * min(pooled_rate, 1.0 - pooled_rate) < min_events


def has_empty_cell(stats: ProportionStats) -> bool:
    """No success, or no failure, in an arm with trials."""
    return stats.n > 0 and stats.successes in (0, stats.n)


def agresti_caffo(stats: ProportionStats) -> Moments:
    """The arm with one success and one failure added: p̃ = (x + 1)/(n + 2) over n + 2 trials."""
    n = stats.n + 2
    p = (stats.successes + 1) / n
    return Moments(n, p, p * (1.0 - p))


def pooled(b: Moments, c: Moments) -> tuple[Moments, Moments]:
    """Both arms with Student's pooled variance (M2_b + M2_c)/(n_b + n_c − 2)."""
    m2 = b.variance * (b.n - 1) + c.variance * (c.n - 1)
    variance = m2 / (b.n + c.n - 2)
    return Moments(b.n, b.mean, variance, True), Moments(c.n, c.mean, variance, True)


def adjust(
    baseline: MetricStats, candidate: MetricStats, b: Moments, c: Moments
) -> tuple[Moments, Moments, Adjustment | None]:
    """The moments a test should use for two arms that both have n ≥ 2 and not both zero
    variance: Agresti–Caffo when two proportions have an empty cell, Student's pooled variance
    when one numeric arm has no spread, else the arms' own moments."""
    if isinstance(baseline, ProportionStats) and isinstance(candidate, ProportionStats):
        if has_empty_cell(baseline) or has_empty_cell(candidate):
            return agresti_caffo(baseline), agresti_caffo(candidate), "agresti_caffo"
        return b, c, None
    if b.variance <= 0 or c.variance <= 0:
        pb, pc = pooled(b, c)
        return pb, pc, "pooled_variance"
    return b, c, None


def fisher_exact_p(
    baseline: ProportionStats, candidate: ProportionStats, alternative: Alternative
) -> float | None:
    """Fisher's exact p-value of H0 p_c = p_b against ``alternative`` ("greater": p_c > p_b);
    ``None`` when the table is too large to sum (see ``_EXACT_SUPPORT``) or not finite."""
    # the candidate's successes given the margins: draws from the pooled urn of all trials
    total, events = baseline.n + candidate.n, baseline.successes + candidate.successes
    draws, observed = candidate.n, candidate.successes
    low, high = max(0, draws - (total - events)), min(events, draws)
    # The probability mass sits within a few standard deviations of the mode; 40 of them (and
    # the observed table) keep everything a double can hold.
    rate = events / total
    sd = math.sqrt(draws * rate * (1 - rate) * (total - draws) / max(1, total - 1))
    mode = (draws + 1) * (events + 1) // (total + 2)
    width = int(40 * sd) + 50
    first = max(low, min(observed, mode - width))
    last = min(high, max(observed, mode + width))
    if last - first > _EXACT_SUPPORT:
        return None
    x = np.arange(first, last + 1)
    with np.errstate(all="ignore"):
        log_pmf = sps.hypergeom.logpmf(x, total, events, draws)
    if not np.all(np.isfinite(log_pmf)):
        return None
    at = observed - first
    if alternative == "greater":
        tail = log_pmf[at:]
    elif alternative == "less":
        tail = log_pmf[: at + 1]
    else:
        tail = log_pmf[log_pmf <= log_pmf[at] + _TIE]
    # normalised by the window's own mass, so the rounding of the log-pmf cancels
    log_p = float(special.logsumexp(tail) - special.logsumexp(log_pmf))
    return min(1.0, math.exp(log_p)) if math.isfinite(log_p) else None
