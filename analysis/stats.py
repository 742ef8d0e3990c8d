"""Per-arm sufficient statistics: what the store aggregates, and all the analysis ever reads.

A boolean metric (success) is its count and number of successes. A numeric one (latency, cost,
a rating) is held in a numerically stable form: its count n, mean and M2 = Σ(x − mean)², the
sum of squared deviations. One more value updates them by Welford's recurrence (Welford 1962,
"Note on a method for calculating corrected sums of squares and products", *Technometrics*
4(3): 419–420) and two samples merge by Chan, Golub & LeVeque's pairwise formula ("Algorithms
for computing the sample variance: analysis and recommendations", *The American Statistician*
37(3), 1983: 242–247). The mean is kept as a fixed shift (the first value seen, or the mean of
the values given) plus a small offset, so its updates round at the scale of the spread: a mean
near 1e12 held as one float moves in steps of 1.2e-4, and Welford's M2 would inherit that.
Why not Σx and Σx²: for values near 1e12 with a spread of 1, Σx² is about n·1e24 and its
rounding alone (n·1e24·2⁻⁵³) exceeds the whole spread, so Σx² − (Σx)²/n is noise; mean and M2
never form those large numbers.

Three ways in, so a store can keep whichever it can update in SQL:

- ``MeanStats(n, total, total_sq)``: raw sums Σx, Σx² (what the store keeps today), converted
  once, as precise as the sums themselves and no more;
- ``MeanStats(n, total, total_sq, shift=K)``: shifted sums Σ(x − K), Σ(x − K)² (the "shifted
  data" algorithm of Chan, Golub & LeVeque): with K near the mean (say, the first value stored)
  the sums stay small and keep the spread, and updating them is still one addition each;
- ``MeanStats.from_moments(n, mean, m2)``: a store that keeps the running mean and M2.

Sums read back from a store may be damaged (an overflow to inf, a rounding that left
Σx² < (Σx)²/n): those are data, not caller bugs, so they are accepted and carried as a
``defect`` ("not_finite", "inconsistent_sums") that every test answers with a reason code.
Only impossible counts (n < 0, successes outside [0, n], sums in an empty arm) raise
``ValueError`` when built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Self, TypeVar

__all__ = ["ArmData", "Defect", "MeanStats", "MetricStats", "ProportionStats"]

Defect = Literal["not_finite", "inconsistent_sums"]

_EPS = 2.0**-52
# A remainder Σ(x − K)² − (Σ(x − K))²/n within 64 ulps of Σ(x − K)² is the subtraction's own
# rounding, not spread. Relative, not n·ε: a low coefficient of variation at n = 1e9 is spread.
_ZERO_TOL = 64 * _EPS
# Naive summation of n terms errs by up to (n − 1)·ε of the sum (Higham, *Accuracy and Stability
# of Numerical Algorithms*, 2nd ed., ch. 4): a remainder below −(4n + 64)·ε·Σ(x − K)² cannot be
# rounding of any real sample, so the sums are damaged.
_SUM_TOL_PER_TERM = 4 * _EPS


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _count(n: int) -> int:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return int(n)


@dataclass(frozen=True, slots=True, init=False)
class MeanStats:
    """A numeric metric in one arm: ``n``, its mean as ``shift + offset`` and ``m2`` =
    Σ(x − mean)². ``shift`` is a fixed reference (the first value seen, or the mean) and
    ``offset`` the mean's distance from it: values near 1e12 then update a small ``offset``
    whose rounding is that of the values' spread, not of 1e12. Build it from sums, shifted
    sums, moments or values (see the module docstring); ``defect`` says why sums read back
    could not be used. Equality is of these fields: the same sample reached by different
    routes may differ in ``shift`` (compare ``mean`` and ``m2``)."""

    n: int
    shift: float
    offset: float
    m2: float
    defect: Defect | None

    def __init__(
        self, n: int = 0, total: float = 0.0, total_sq: float = 0.0, *, shift: float = 0.0
    ) -> None:
        """From Σ(x − shift) = ``total`` and Σ(x − shift)² = ``total_sq`` (raw sums: shift 0)."""
        n = _count(n)
        if n == 0:
            if total != 0 or total_sq != 0:
                raise ValueError("an empty arm has zero sums")
            _set(self, 0, 0.0, 0.0, 0.0, None)
            return
        offset = total / n if _finite(total) else math.nan
        if not _finite(total, total_sq, shift, offset, shift + offset):
            _set(self, n, 0.0, 0.0, 0.0, "not_finite")
            return
        spread = total_sq - total * offset  # Σ(x − K)² − (Σ(x − K))²/n = M2
        floor = -(_SUM_TOL_PER_TERM * n + _ZERO_TOL) * total_sq
        if total_sq < 0 or spread < floor or (n == 1 and spread > _ZERO_TOL * total_sq):
            _set(self, n, shift, offset, 0.0, "inconsistent_sums")
        elif spread <= _ZERO_TOL * total_sq:
            _set(self, n, shift, offset, 0.0, None)  # constant data reads exactly 0
        else:
            _set(self, n, shift, offset, spread, None)

    @classmethod
    def from_moments(cls, n: int, mean: float, m2: float) -> Self:
        """From the running mean and M2 = Σ(x − mean)² (Welford's form)."""
        n = _count(n)
        if n == 0:
            if mean != 0 or m2 != 0:
                raise ValueError("an empty arm has zero sums")
            return _make(cls, 0, 0.0, 0.0, 0.0, None)
        if not _finite(mean, m2):
            return _make(cls, n, 0.0, 0.0, 0.0, "not_finite")
        if m2 < 0 or (n == 1 and m2 > 0):
            return _make(cls, n, mean, 0.0, 0.0, "inconsistent_sums")
        return _make(cls, n, mean, 0.0, m2, None)

    @classmethod
    def from_values(cls, values: Iterable[float]) -> Self:
        """The statistics of raw values (tests and small tools), by the corrected two-pass
        algorithm (Chan, Golub & LeVeque 1983) about the rounded mean: the mean, then
        Σ(x − mean)² less the rounding left in Σ(x − mean)."""
        xs = [float(v) for v in values]
        n = len(xs)
        if n == 0:
            return _make(cls, 0, 0.0, 0.0, 0.0, None)
        if not _finite(*xs):
            return _make(cls, n, 0.0, 0.0, 0.0, "not_finite")
        if min(xs) == max(xs):
            return _make(cls, n, xs[0], 0.0, 0.0, None)
        try:
            shift = math.fsum(xs) / n
        except OverflowError:  # the sum overflows although the mean does not
            shift = math.fsum(x / n for x in xs)
        deviations = [x - shift for x in xs]
        if not _finite(shift, *deviations):
            return _make(cls, n, 0.0, 0.0, 0.0, "not_finite")
        residue = math.fsum(deviations)
        m2 = math.fsum(d * d for d in deviations) - residue * residue / n
        if not math.isfinite(m2):
            return _make(cls, n, 0.0, 0.0, 0.0, "not_finite")
        return _make(cls, n, shift, residue / n, max(0.0, m2), None)

    def add(self, value: float) -> Self:
        """These statistics with one more observation (Welford's recurrence, about the shift;
        the first value becomes the shift)."""
        n, cls = self.n + 1, type(self)
        if self.defect is not None:
            return _make(cls, n, self.shift, self.offset, 0.0, self.defect)
        if self.n == 0:
            return _make(cls, 1, value, 0.0, 0.0, None) if _finite(value) else _not_finite(cls, 1)
        d = value - self.shift
        delta = d - self.offset
        offset = self.offset + delta / n
        m2 = self.m2 + delta * (d - offset)
        if not _finite(value, delta, offset, m2, self.shift + offset):
            return _not_finite(cls, n)
        return _make(cls, n, self.shift, offset, m2, None)

    def merge(self, other: MeanStats) -> Self:
        """The statistics of both samples together (days, shards, steps): Chan et al.'s
        M2 = M2_a + M2_b + δ²·n_a·n_b/n, δ the difference of the means taken about this
        sample's shift (so two means near 1e12 differ by a small, exact number)."""
        n, cls = self.n + other.n, type(self)
        if other.n == 0:
            return self
        if self.n == 0:
            return _make(cls, n, other.shift, other.offset, other.m2, other.defect)
        defect = self.defect or other.defect
        if defect == "not_finite":
            return _not_finite(cls, n)
        other_offset = (other.shift - self.shift) + other.offset  # about this shift
        delta = other_offset - self.offset
        offset = self.offset + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta * delta * (self.n / n) * other.n
        if not _finite(other_offset, delta, offset, m2, self.shift + offset):
            return _not_finite(cls, n)
        return _make(cls, n, self.shift, offset, 0.0 if defect else m2, defect)

    __add__ = merge

    @property
    def center(self) -> float:
        """The mean as one float (0 without observations or when not finite)."""
        return self.shift + self.offset

    @property
    def total(self) -> float:
        """Σx (n·mean): what the raw-sums constructor takes; NaN when not finite."""
        return math.nan if self.defect == "not_finite" else self.n * self.center

    @property
    def total_sq(self) -> float:
        """Σx² (M2 + n·mean²); NaN when not finite."""
        if self.defect == "not_finite":
            return math.nan
        return self.m2 + self.n * self.center * self.center

    @property
    def mean(self) -> float | None:
        """The sample mean, or ``None`` without observations or when not finite."""
        return None if self.n == 0 or self.defect == "not_finite" else self.center

    @property
    def variance(self) -> float | None:
        """The sample variance M2/(n − 1), or ``None`` below two observations or with a
        defect. Constant data gives exactly 0, never a tiny positive artefact."""
        if self.n < 2 or self.defect is not None:
            return None
        return self.m2 / (self.n - 1)

    @property
    def std(self) -> float | None:
        """The sample standard deviation (divisor n − 1), or ``None`` (see ``variance``)."""
        variance = self.variance
        return None if variance is None else math.sqrt(variance)


_M = TypeVar("_M", bound="MeanStats")


def _set(
    stats: MeanStats, n: int, shift: float, offset: float, m2: float, defect: Defect | None
) -> None:
    # frozen: the constructor and ``_make`` are the only writers
    object.__setattr__(stats, "n", n)
    object.__setattr__(stats, "shift", shift)
    object.__setattr__(stats, "offset", offset)
    object.__setattr__(stats, "m2", m2)
    object.__setattr__(stats, "defect", defect)


def _make(
    cls: type[_M], n: int, shift: float, offset: float, m2: float, defect: Defect | None
) -> _M:
    """An instance of ``cls`` (a subclass stays itself) without going through ``__init__``."""
    stats = object.__new__(cls)
    _set(stats, n, shift, offset, m2, defect)
    return stats


def _not_finite(cls: type[_M], n: int) -> _M:
    return _make(cls, n, 0.0, 0.0, 0.0, "not_finite")


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
        """The same data as a numeric 0/1 metric: mean k/n, M2 = k(n − k)/n exactly."""
        if self.n == 0:
            return MeanStats()
        k, n = self.successes, self.n
        return MeanStats.from_moments(n, k / n, k * (n - k) / n)


MetricStats = MeanStats | ProportionStats


@dataclass(frozen=True)
class ArmData:
    """One arm as the store reports it: runs assigned to it, and each metric's statistics.

    ``runs`` counts every run routed to the arm (``min_runs_per_arm`` reads it); a metric's own
    ``n`` may be lower (a run without a latency, say). ``users``, when the store reports it,
    counts the arm's distinct users at the current step: assignment is by user, so the sample
    ratio check counts users when every arm has them, and runs otherwise.
    """

    runs: int
    metrics: Mapping[str, MetricStats] = field(default_factory=dict)
    users: int | None = None

    def __post_init__(self) -> None:
        if self.runs < 0:
            raise ValueError(f"runs must be >= 0, got {self.runs}")
        if self.users is not None and self.users < 0:
            raise ValueError(f"users must be >= 0, got {self.users}")
