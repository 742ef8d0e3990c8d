"""Paired comparisons: two versions run on the same request, one difference per pair.

A shadow run executes the served request's own inputs, so each served run and its shadow run
form a pair, and the differences d_i = shadow_i − served_i carry the comparison: the requests'
own spread (a long prompt is slow on both versions) cancels out of each difference.

- **Numeric metrics** (latency, cost, scores): **the paired t-test**, the one-sample t-test on
  the differences (Student 1908, "The probable error of a mean", *Biometrika* 6(1): 1–25; the
  paired form in Fisher, *Statistical Methods for Research Workers*, 1925, §24):
  t = d̄ / (s_d / √n) against Student's t with n − 1 degrees of freedom, and the interval
  d̄ ± t_{1−α/2, n−1} · s_d / √n; the same figures as ``scipy.stats.ttest_rel``. The mean and
  the variance are taken in two passes over ``math.fsum`` sums, so large costs with tiny
  differences keep their digits.
- **Success** (binary): **McNemar's exact test** (McNemar 1947, "Note on the sampling error of
  the difference between correlated proportions or percentages", *Psychometrika* 12(2):
  153–157; the exact conditional form in Agresti, *Categorical Data Analysis*, 3rd ed., §11.1):
  only the discordant pairs inform, b (served succeeded, shadow failed) and c (the reverse);
  under H0 c ~ Binomial(b + c, 1/2), and the two-sided p-value is
  min(1, 2 · P(X ≤ min(b, c))), as ``scipy.stats.binomtest(min(b, c), b + c, 0.5)``.

Degenerate input returns a result with a ``reason`` and ``None`` for what cannot be computed:
``no_pairs``, ``too_few_pairs`` (one pair: no spread to estimate), ``zero_variance`` (every
difference equal: no test, the mean difference says it all), ``no_discordant_pairs`` (every
pair agrees on success: nothing to test), ``not_finite`` (a value was NaN or infinite).

These are fixed-horizon tests: looking at them after every batch and acting on the first
p < α inflates false verdicts (``analysis.significance`` says by how much); a shadow is
evidence before a rollout, which the experiments then test sequentially.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scipy import stats as sps

__all__ = [
    "PairedMeans",
    "PairedProportions",
    "PairedReason",
    "mcnemar_exact",
    "paired_t_test",
]

PairedReason = Literal[
    "ok", "no_pairs", "too_few_pairs", "zero_variance", "no_discordant_pairs", "not_finite"
]


@dataclass(frozen=True, slots=True)
class PairedMeans:
    """The paired t-test of shadow − served over ``n`` pairs."""

    n: int
    served_mean: float | None
    shadow_mean: float | None
    mean_difference: float | None  # shadow − served
    sd_difference: float | None
    statistic: float | None  # t
    df: int | None
    p_value: float | None  # two-sided
    ci_low: float | None
    ci_high: float | None
    reason: PairedReason
    method: str = "paired t-test"


@dataclass(frozen=True, slots=True)
class PairedProportions:
    """McNemar's exact test of shadow vs served success over ``n`` pairs."""

    n: int
    served_rate: float | None
    shadow_rate: float | None
    mean_difference: float | None  # shadow rate − served rate
    served_only: int  # pairs where only the served run succeeded (b)
    shadow_only: int  # pairs where only the shadow run succeeded (c)
    p_value: float | None  # two-sided
    reason: PairedReason
    method: str = "McNemar's exact test"


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def paired_t_test(
    served: Sequence[float], shadow: Sequence[float], *, alpha: float = 0.05
) -> PairedMeans:
    """The paired t-test of ``shadow[i] − served[i]``; ``ValueError`` when the lengths differ
    or ``alpha`` is not in (0, 1)."""
    if len(served) != len(shadow):
        raise ValueError(f"{len(served)} served values but {len(shadow)} shadow values")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n = len(served)
    empty = PairedMeans(n, None, None, None, None, None, None, None, None, None, "no_pairs")
    if n == 0:
        return empty
    if not all(math.isfinite(v) for v in (*served, *shadow)):
        return PairedMeans(n, None, None, None, None, None, None, None, None, None, "not_finite")
    diffs = [b - a for a, b in zip(served, shadow, strict=True)]
    d_bar = _mean(diffs)
    means = (_mean(served), _mean(shadow), d_bar)
    if n == 1:
        return PairedMeans(n, *means, None, None, None, None, None, None, "too_few_pairs")
    variance = math.fsum((d - d_bar) ** 2 for d in diffs) / (n - 1)
    # Equal differences up to rounding: the centred sum of squares is noise in the last bits.
    if variance <= (8 * math.ulp(max(1.0, abs(d_bar)))) ** 2:
        return PairedMeans(n, *means, 0.0, None, n - 1, None, d_bar, d_bar, "zero_variance")
    sd = math.sqrt(variance)
    se = sd / math.sqrt(n)
    t = d_bar / se
    df = n - 1
    p = float(min(1.0, 2 * sps.t.sf(abs(t), df)))
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    return PairedMeans(n, *means, sd, t, df, p, d_bar - half, d_bar + half, "ok")


def mcnemar_exact(served: Sequence[bool], shadow: Sequence[bool]) -> PairedProportions:
    """McNemar's exact test of paired successes; ``ValueError`` when the lengths differ."""
    if len(served) != len(shadow):
        raise ValueError(f"{len(served)} served values but {len(shadow)} shadow values")
    n = len(served)
    if n == 0:
        return PairedProportions(0, None, None, None, 0, 0, None, "no_pairs")
    b = sum(1 for a, s in zip(served, shadow, strict=True) if a and not s)
    c = sum(1 for a, s in zip(served, shadow, strict=True) if s and not a)
    served_rate, shadow_rate = sum(map(bool, served)) / n, sum(map(bool, shadow)) / n
    rates = (served_rate, shadow_rate, (c - b) / n)
    if b + c == 0:
        return PairedProportions(n, *rates, b, c, None, "no_discordant_pairs")
    p = float(min(1.0, 2 * sps.binom.cdf(min(b, c), b + c, 0.5)))
    return PairedProportions(n, *rates, b, c, p, "ok")
