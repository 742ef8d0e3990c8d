"""Per-arm sufficient statistics: what the store aggregates, and all the analysis ever reads.

A numeric metric (latency, cost, a rating) is summarised by its count, sum and sum of squares;
a boolean one (success) by its count and number of successes. In SQL that is one pass::

    SELECT arm, COUNT(latency_s), SUM(latency_s), SUM(latency_s * latency_s),
           COUNT(*), SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END)
    FROM runs WHERE experiment = :id GROUP BY arm

so an analysis costs the same for 1,000 runs as for 10 million, and arms, days or shards merge by
adding their statistics. These objects never hold rows.

Invalid objects (a negative count, more successes than trials, a sum that is not finite) raise
``ValueError`` when built: they are bugs in the caller. *Degenerate* ones (no runs, one run, all
values equal) are valid and every analysis function answers them with a reason code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["ArmData", "MeanStats", "MetricStats", "ProportionStats"]

# Rounding in a sum of n squares is at most about n·ε of it (naive summation, as SQL does), and
# Σx² − (Σx)²/n loses that much again; a remainder below it is noise, not spread.
_EPS = 2.0**-52


@dataclass(frozen=True, slots=True)
class MeanStats:
    """Count, sum and sum of squares of a numeric metric in one arm."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if not (math.isfinite(self.total) and math.isfinite(self.total_sq)):
            raise ValueError(f"sums must be finite, got {self.total}, {self.total_sq}")
        if self.total_sq < 0:
            raise ValueError(f"a sum of squares cannot be negative, got {self.total_sq}")
        if self.n == 0 and (self.total != 0 or self.total_sq != 0):
            raise ValueError("an empty arm has zero sums")

    @classmethod
    def from_values(cls, values: Iterable[float]) -> MeanStats:
        """The statistics of raw values (tests and small tools; the store aggregates in SQL)."""
        xs = [float(v) for v in values]
        return cls(len(xs), math.fsum(xs), math.fsum(x * x for x in xs))

    def add(self, value: float) -> MeanStats:
        """These statistics with one more observation."""
        return MeanStats(self.n + 1, self.total + value, self.total_sq + value * value)

    def merge(self, other: MeanStats) -> MeanStats:
        """The statistics of both samples together (days, shards, processes)."""
        return MeanStats(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    __add__ = merge

    @property
    def mean(self) -> float | None:
        """The sample mean, or ``None`` without observations."""
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The sample variance (divisor n − 1), or ``None`` below two observations.

        Computed as (Σx² − (Σx)²/n)/(n − 1); a remainder within the rounding error of the sums
        reads as 0, so constant data gives exactly 0 and never a tiny positive artefact.
        """
        if self.n < 2:
            return None
        spread = self.total_sq - self.total * (self.total / self.n)
        if spread <= 4.0 * self.n * _EPS * self.total_sq:
            return 0.0
        return spread / (self.n - 1)

    @property
    def std(self) -> float | None:
        """The sample standard deviation (divisor n − 1), or ``None`` below two observations."""
        variance = self.variance
        return None if variance is None else math.sqrt(variance)


@dataclass(frozen=True, slots=True)
class ProportionStats:
    """Trials and successes of a boolean metric in one arm."""

    n: int = 0
    successes: int = 0

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if not 0 <= self.successes <= self.n:
            raise ValueError(f"successes must be in [0, n={self.n}], got {self.successes}")

    @classmethod
    def from_flags(cls, flags: Iterable[bool]) -> ProportionStats:
        """The statistics of raw outcomes (tests and small tools)."""
        outcomes = [bool(f) for f in flags]
        return cls(len(outcomes), sum(outcomes))

    def add(self, success: bool) -> ProportionStats:
        """These statistics with one more trial."""
        return ProportionStats(self.n + 1, self.successes + int(success))

    def merge(self, other: ProportionStats) -> ProportionStats:
        """The statistics of both samples together."""
        return ProportionStats(self.n + other.n, self.successes + other.successes)

    __add__ = merge

    @property
    def mean(self) -> float | None:
        """The success rate, or ``None`` without trials."""
        return self.successes / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The sample variance of the 0/1 outcomes (divisor n − 1): n·p(1 − p)/(n − 1).

        The z-tests use the Bernoulli variance p(1 − p) instead (see ``analysis.effects``);
        this one is what ``as_mean()`` gives, for callers that treat the outcome as a number.
        """
        if self.n < 2:
            return None
        p = self.successes / self.n
        return self.n * p * (1.0 - p) / (self.n - 1)

    def as_mean(self) -> MeanStats:
        """The same data as a numeric 0/1 metric (x² = x, so Σx² = Σx = successes)."""
        return MeanStats(self.n, float(self.successes), float(self.successes))


MetricStats = MeanStats | ProportionStats


@dataclass(frozen=True)
class ArmData:
    """One arm as the store reports it: runs assigned to it, and each metric's statistics.

    ``runs`` counts every run routed to the arm (the sample-ratio check compares these with the
    configured shares); a metric's own ``n`` may be lower (a run without a latency, say).
    """

    runs: int
    metrics: Mapping[str, MetricStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runs < 0:
            raise ValueError(f"runs must be >= 0, got {self.runs}")
