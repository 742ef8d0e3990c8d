"""Sample ratio mismatch: do the arms hold the share of runs the rollout configured?

A mismatch means the assignment or the logging is broken (a crash on one arm, a redirect, a bot
filter), and then every comparison is suspect, whatever it says (Kohavi, Tang & Xu, *Trustworthy
Online Controlled Experiments*, 2020, ch. 21; Fabijan et al., "Diagnosing Sample Ratio Mismatch
in Online Controlled Experiments", KDD 2019). The test is Pearson's chi-square goodness of fit of
the observed counts against total × share, k − 1 degrees of freedom, and the alarm threshold is
strict (p < 0.001 by default) because it is checked at every look and a false alarm halts.

Strict is not enough: a chi-square p-value is valid at one look, and looked at every 30 s its
false alarms accumulate. ``analysis.srm_sequential`` tests the same hypothesis with an
always-valid test (Lindon & Malek 2022) and returns the same ``SRMResult``; ``prepare`` is the
part both share (validation, normalised shares, runs where no share was configured).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from scipy import special

__all__ = ["DEFAULT_SRM_THRESHOLD", "Prepared", "SRMReason", "SRMResult", "prepare", "srm_check"]

DEFAULT_SRM_THRESHOLD = 0.001

SRMReason = Literal[
    "ok",  # tested, no mismatch
    "mismatch",  # tested, p below the threshold: flagged
    "zero_share_with_runs",  # runs in an arm configured at 0 % (or not configured): flagged
    "no_data",  # no runs at all: nothing to test
    "single_arm",  # fewer than two arms with a share: nothing to compare
    "invalid_input",  # a negative count, a negative or non-finite share, shares summing to 0
]


@dataclass(frozen=True)
class SRMResult:
    """The check: ``flagged`` is the verdict; ``p_value``/``statistic``/``df`` are ``None``
    when no test was computed (see ``reason``); ``expected`` holds total × share per arm.
    ``method`` names the test: "chi_square" (``statistic`` is χ², ``df`` its degrees of
    freedom) or "dirichlet_multinomial" (``statistic`` is the log Bayes factor, ``df`` None)."""

    flagged: bool
    reason: SRMReason
    threshold: float
    p_value: float | None = None
    statistic: float | None = None
    df: int | None = None
    observed: Mapping[str, int] = field(default_factory=dict)
    expected: Mapping[str, float] = field(default_factory=dict)
    zero_share_arms: tuple[str, ...] = ()
    method: str = "chi_square"


@dataclass(frozen=True)
class Prepared:
    """Counts ready for a test: the arms with a share (``tested``), their counts and shares
    (normalised to sum 1), and the result so far (``base``, with ``expected`` filled in)."""

    base: SRMResult
    tested: tuple[str, ...]
    observed: Mapping[str, int]
    share: Mapping[str, float]


def prepare(
    counts: Mapping[str, int],
    shares: Mapping[str, float],
    *,
    threshold: float,
    method: str,
) -> SRMResult | Prepared:
    """Validate and normalise; an ``SRMResult`` when no test is needed (invalid input, no data,
    runs where no share was configured, fewer than two arms with a share), else ``Prepared``."""
    arms = list(dict.fromkeys([*shares, *counts]))
    observed = {arm: int(counts.get(arm, 0)) for arm in arms}
    weights = {arm: float(shares.get(arm, 0.0)) for arm in arms}
    base = SRMResult(
        flagged=False, reason="ok", threshold=threshold, observed=observed, method=method
    )
    valid = (
        0.0 < threshold < 1.0
        and all(n >= 0 for n in observed.values())
        and all(math.isfinite(w) and w >= 0 for w in weights.values())
        and 0 < sum(weights.values()) < math.inf
    )
    if not valid:
        return replace(base, reason="invalid_input")
    total = sum(observed.values())
    if total == 0:
        return replace(base, reason="no_data")
    weight_sum = sum(weights.values())
    # normalise first: total × share cannot overflow; a weight so small that its share
    # underflows to 0 is a share of 0
    share = {arm: w / weight_sum for arm, w in weights.items()}
    expected = {arm: total * s for arm, s in share.items()}
    base = replace(base, expected=expected)
    stray = tuple(arm for arm in arms if expected[arm] == 0 and observed[arm] > 0)
    if stray:  # any run where none was configured is a mismatch, whatever a test would say
        return replace(base, flagged=True, reason="zero_share_with_runs", zero_share_arms=stray)
    tested = tuple(arm for arm in arms if expected[arm] > 0)
    if len(tested) < 2:
        return replace(base, reason="single_arm")
    return Prepared(base, tested, observed, share)


def srm_check(
    counts: Mapping[str, int],
    shares: Mapping[str, float],
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SRMResult:
    """Chi-square goodness of fit of ``counts`` (runs per arm) to ``shares`` (any positive
    weights: 90/10 or 0.9/0.1). An arm missing from ``shares`` has share 0; one missing from
    ``counts`` has no runs. Flags when p < ``threshold``, or when an arm at share 0 has runs."""
    prepared = prepare(counts, shares, threshold=threshold, method="chi_square")
    if isinstance(prepared, SRMResult):
        return prepared
    base, tested, observed = prepared.base, prepared.tested, prepared.observed
    expected = base.expected
    statistic = math.fsum(
        (observed[arm] - expected[arm]) * (observed[arm] - expected[arm]) / expected[arm]
        for arm in tested
    )
    df = len(tested) - 1
    if not math.isfinite(statistic):  # runs where the share is all but 0: beyond any doubt
        return replace(base, flagged=True, reason="mismatch", p_value=0.0, df=df)
    p = float(special.chdtrc(df, statistic))
    flagged = p < threshold
    return replace(
        base,
        flagged=flagged,
        reason="mismatch" if flagged else "ok",
        p_value=p,
        statistic=statistic,
        df=df,
    )
