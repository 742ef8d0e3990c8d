"""Per-unit sufficient statistics: users are randomised, so users are the unit of analysis.

A user who runs many times contributes many correlated runs; testing runs as if they were
independent understates the variance and decides falsely far more often than alpha. Each arm
keeps, over its units u (users), the count of units U and the sums of each unit's count N_u and
total S_u, of N_u², S_u² and S_u·N_u. A per-run metric (success rate, latency, cost per run, an
outcome per run) is then the ratio R = ΣS / ΣN, and its variance over users comes from the delta
method (Deng, Knoblich and Lu, "Applying the Delta Method in Metric Analytics", KDD 2018, eq. 2;
the same estimator as gbstats' ratio metrics):

    Var(R) ≈ (1 / U) · Var_u(S − R·N) / mean(N)²

``as_metric_stats`` turns these sums into the statistics the tests already read: the linearised
values L_u = (S_u − R·N_u) / mean(N) have mean 0 and the variance above, so a ``MeanStats`` with
``n = U``, mean R and the spread of L has exactly the delta method's standard error, and every
test (fixed or sequential) then counts users. When every unit ran once (N_u = 1) the sums are
the run-level ones and the plain statistics are returned unchanged (a ``ProportionStats`` for a
proportion), so the one-run-per-user case is analysed exactly as before.

The delta method is asymptotic in the number of units, and a ratio leans on its heavy units: one
user with 200 runs among forty with one to three carries most of ΣN, and the ratio is then about
that one user, whatever U says. The statistics therefore carry Kish's effective number of units
for weights N_u, U_eff = (ΣN)² / ΣN² (Kish, *Survey Sampling*, 1965, §11.7; 1.9 in that
example), and ``analysis.degenerate.too_few_units`` refuses to test a ratio resting on fewer
effective units than the spec's ``min_events`` (for a rate: fewer expected events among them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

from analysis.stats import MeanStats, MetricStats, ProportionStats

__all__ = ["MeanOverUnits", "RateOverUnits", "UnitStats", "effective_units"]


class _OverUnits(MeanStats):
    """A ratio over units: a ``MeanStats`` of its linearised values that also knows on how many
    effective units it rests (``effective_units``; unknown after a ``merge``)."""

    __slots__ = ("effective_units",)

    @classmethod
    def over_units(cls, n: int, mean: float, m2: float, effective: float) -> Self:
        stats = cls.from_moments(n, mean, m2)
        object.__setattr__(stats, "effective_units", effective)  # frozen: set once, here
        return stats


class RateOverUnits(_OverUnits):
    """A proportion whose units ran more than once: the mean and spread of its linearised
    values. A type of its own, so that a plain ``MeanStats`` handed in for a proportion is
    still refused as the caller's mistake; built and read exactly as a ``MeanStats``."""

    __slots__ = ()


class MeanOverUnits(_OverUnits):
    """A per-run mean (latency, cost per run) over units who ran more than once."""

    __slots__ = ()


def effective_units(stats: MetricStats) -> float | None:
    """The units a statistic rests on when it is a ratio over units (``None``: not known, or
    not a ratio: every observation is its own unit)."""
    found = getattr(stats, "effective_units", None)
    return float(found) if found is not None else None


@dataclass(frozen=True, slots=True)
class UnitStats:
    """Sums over the units of one arm (see the module docstring). ``sum_n`` is the number of
    observations (runs), ``sum_s`` their total."""

    units: int = 0
    sum_n: float = 0.0
    sum_s: float = 0.0
    sum_nn: float = 0.0
    sum_ss: float = 0.0
    sum_sn: float = 0.0
    # Each unit's pre-exposure covariate X (``analysis.cuped``): ΣX, ΣX², ΣX·S, ΣX·N, and how
    # many units had pre-exposure data (the others have X = 0).
    sum_x: float = 0.0
    sum_xx: float = 0.0
    sum_xs: float = 0.0
    sum_xn: float = 0.0
    covered: int = 0

    def merge(self, other: UnitStats) -> UnitStats:
        """Both together, as disjoint sets of units (ramp steps are stored apart)."""
        return UnitStats(
            self.units + other.units,
            self.sum_n + other.sum_n,
            self.sum_s + other.sum_s,
            self.sum_nn + other.sum_nn,
            self.sum_ss + other.sum_ss,
            self.sum_sn + other.sum_sn,
            self.sum_x + other.sum_x,
            self.sum_xx + other.sum_xx,
            self.sum_xs + other.sum_xs,
            self.sum_xn + other.sum_xn,
            self.covered + other.covered,
        )

    __add__ = merge

    @property
    def finite(self) -> bool:
        sums = (self.sum_n, self.sum_s, self.sum_nn, self.sum_ss, self.sum_sn)
        return all(math.isfinite(value) for value in sums)

    @property
    def one_run_per_unit(self) -> bool:
        # Σ N² = Σ N exactly when every N is 1 (counts are whole numbers).
        return self.sum_nn == self.sum_n == self.units

    def as_metric_stats(self, kind: str) -> MetricStats | None:
        """The statistics a test reads, with users as the units; ``None`` when the sums cannot
        describe any sample (not finite, or inconsistent), for the caller to report."""
        if self.units <= 0 or self.sum_n <= 0:
            return ProportionStats() if kind == "proportion" else MeanStats()
        if not self.finite:
            return None
        n = int(self.units)
        if self.one_run_per_unit:
            if kind == "proportion":
                successes = round(self.sum_s)
                if not 0 <= successes <= n:
                    return None
                return ProportionStats(n=n, successes=successes)
            return _mean_stats(n, self.sum_s, self.sum_ss)
        ratio = self.sum_s / self.sum_n
        mean_n = self.sum_n / n
        # Σ (S − R·N)² = ΣS² − 2R·ΣSN + R²·ΣN², never negative but for rounding.
        spread = self.sum_ss - 2.0 * ratio * self.sum_sn + ratio * ratio * self.sum_nn
        spread = max(0.0, spread) / (mean_n * mean_n)
        # Statistics whose mean is R and whose sum of squared deviations is Σ L² (Welford's
        # form: no sums to cancel).
        cls = RateOverUnits if kind == "proportion" else MeanOverUnits
        effective = self.sum_n * self.sum_n / self.sum_nn if self.sum_nn > 0 else 0.0
        stats = cls.over_units(n, ratio, spread, effective)
        return None if stats.defect is not None else stats


def _mean_stats(n: int, total: float, total_sq: float) -> MetricStats | None:
    stats = MeanStats(n=n, total=total, total_sq=total_sq)
    # Sums no sample can have: reported by the caller as missing, never raised.
    return None if stats.defect is not None else stats
