"""Sufficient statistics: moments against numpy, merging, validation, degenerate arms."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from analysis.effects import effect, moments
from analysis.stats import ArmData, MeanStats, ProportionStats

VALUES = [3.2, 2.9, 4.1, 3.3, 5.0, 2.2, 3.8]


def test_mean_stats_match_numpy() -> None:
    stats = MeanStats.from_values(VALUES)
    assert stats.n == 7
    assert stats.mean == pytest.approx(np.mean(VALUES), rel=1e-12)
    assert stats.variance == pytest.approx(np.var(VALUES, ddof=1), rel=1e-12)
    assert stats.std == pytest.approx(np.std(VALUES, ddof=1), rel=1e-12)


def test_merge_and_add_equal_the_statistics_of_the_union() -> None:
    left, right = MeanStats.from_values(VALUES[:3]), MeanStats.from_values(VALUES[3:])
    merged = left.merge(right)
    whole = MeanStats.from_values(VALUES)
    assert merged.n == whole.n
    assert merged.total == pytest.approx(whole.total)
    assert merged.total_sq == pytest.approx(whole.total_sq)
    assert left + right == merged
    grown = MeanStats()
    for v in VALUES:
        grown = grown.add(v)
    assert grown.variance == pytest.approx(whole.variance)
    p = ProportionStats(10, 3).merge(ProportionStats(5, 5)).add(False)
    assert p == ProportionStats(16, 8)


def test_proportion_stats_variance_is_the_sample_variance_of_zeros_and_ones() -> None:
    flags = [True, False, False, True, True, False, False, False]
    stats = ProportionStats.from_flags(flags)
    assert (stats.n, stats.successes) == (8, 3)
    assert stats.mean == pytest.approx(3 / 8)
    assert stats.variance == pytest.approx(np.var(np.array(flags, float), ddof=1))
    as_mean = stats.as_mean()
    assert as_mean.variance == pytest.approx(stats.variance)


def test_degenerate_arms_have_none_not_nan() -> None:
    assert MeanStats().mean is None
    assert MeanStats().variance is None
    assert MeanStats.from_values([4.0]).variance is None
    assert ProportionStats().mean is None
    assert ProportionStats(1, 1).variance is None
    assert moments(MeanStats()) is None


def test_constant_data_has_exactly_zero_variance() -> None:
    # 0.1 is not representable: Σx² − (Σx)²/n leaves a rounding remainder that must read as 0
    stats = MeanStats.from_values([0.1] * 1000)
    assert stats.variance == 0.0
    big = MeanStats(10_000_000, 0.1 * 10_000_000, 0.01 * 10_000_000)
    assert big.variance == 0.0
    assert MeanStats.from_values([1e6, 1e6 + 1]).variance == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: MeanStats(-1, 0.0, 0.0), "n must be >= 0"),
        (lambda: MeanStats(0, 1.0, 1.0), "an empty arm has zero sums"),
        (lambda: ProportionStats(3, 4), "successes must be in"),
        (lambda: ProportionStats(-1, 0), "n must be >= 0"),
        (lambda: ProportionStats(3, -1), "successes must be in"),
        (lambda: ArmData(-5), "runs must be >= 0"),
    ],
)
def test_impossible_statistics_are_refused_when_built(
    build: Callable[[], object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    ("stats", "defect"),
    [
        # Issue 12: these were refused with ValueError, so one stored inf (an outcome of 1e308
        # on two runs) made every analysis of the experiment raise. Sums read back from a store
        # are data: they are kept, with a defect every test answers with a reason code.
        (MeanStats(2, math.nan, 1.0), "not_finite"),
        (MeanStats(2, 1.0, math.inf), "not_finite"),
        (MeanStats(2, 1.0, -1.0), "inconsistent_sums"),
    ],
)
def test_damaged_sums_are_kept_with_a_defect(stats: MeanStats, defect: str) -> None:
    assert stats.defect == defect
    assert stats.variance is None


def test_relative_effect_variance_is_the_delta_method() -> None:
    b, c = MeanStats.from_values([2.0, 4.0, 3.0, 5.0]), MeanStats.from_values([4.0, 6.0, 5.0])
    mb, mc = moments(b), moments(c)
    assert mb is not None
    assert mc is not None
    est = effect(mb, mc)
    # hand: m_b = 3.5, v_b = 5/3, n_b = 4; m_c = 5, v_c = 1, n_c = 3
    var_mb, var_mc = (5 / 3) / 4, 1 / 3
    assert est.difference == pytest.approx(1.5)
    assert est.variance == pytest.approx(var_mb + var_mc)
    assert est.relative == pytest.approx(5 / 3.5 - 1)
    # Var(m_c/m_b) ≈ Var(m_c)/m_b² + m_c² Var(m_b)/m_b⁴
    assert est.relative_variance == pytest.approx(var_mc / 3.5**2 + 25 * var_mb / 3.5**4)


def test_relative_effect_is_none_on_a_zero_baseline() -> None:
    mb, mc = moments(MeanStats.from_values([0.0, 0.0])), moments(MeanStats.from_values([1.0, 2]))
    assert mb is not None
    assert mc is not None
    est = effect(mb, mc)
    assert est.relative is None
    assert est.relative_variance is None
