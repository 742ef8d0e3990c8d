"""Users as the unit: per-unit sums and the delta method (``analysis.units``).

Golden values are computed here from the raw per-user data with numpy, independently of the
module's algebra: the linearised values L_u = (S_u − R·N_u) / mean(N) and their sample
variance, which is what Deng, Knoblich and Lu (KDD 2018) give for a ratio metric's variance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.sequential import sequential_test
from analysis.significance import fixed_test
from analysis.stats import MeanStats, ProportionStats
from analysis.units import MeanOverUnits, RateOverUnits, UnitStats, effective_units


def _sums(n: np.ndarray, s: np.ndarray) -> UnitStats:
    return UnitStats(
        units=len(n),
        sum_n=float(n.sum()),
        sum_s=float(s.sum()),
        sum_nn=float((n * n).sum()),
        sum_ss=float((s * s).sum()),
        sum_sn=float((s * n).sum()),
    )


def test_a_ratio_metric_gets_the_delta_method_variance_over_users() -> None:
    rng = np.random.default_rng(7)
    n = rng.integers(1, 20, size=500).astype(float)  # runs per user, heavy-ish tail
    s = rng.binomial(n.astype(int), 0.3).astype(float)  # successes per user
    stats = _sums(n, s).as_metric_stats("proportion")
    assert isinstance(stats, MeanStats)
    ratio = s.sum() / n.sum()
    linear = (s - ratio * n) / n.mean()
    assert stats.n == 500
    assert stats.mean == pytest.approx(ratio, rel=1e-12)
    assert stats.variance is not None
    assert stats.variance == pytest.approx(np.var(linear, ddof=1), rel=1e-9)
    # The standard error of the ratio, as the tests will compute it from these statistics.
    assert math.sqrt(stats.variance / stats.n) == pytest.approx(
        math.sqrt(np.var(linear, ddof=1) / 500), rel=1e-9
    )


def test_repeated_runs_of_one_user_do_not_count_as_independent_evidence() -> None:
    # One user with 150 successes in 150 runs beside 100 users with one failure each: per run
    # that is 150/250 = 0.6 with a tiny binomial error; per user the error is much larger.
    n = np.array([150.0] + [1.0] * 100)
    s = np.array([150.0] + [0.0] * 100)
    stats = _sums(n, s).as_metric_stats("proportion")
    assert isinstance(stats, MeanStats)
    assert stats.n == 101
    per_run_se = math.sqrt(0.6 * 0.4 / 250)
    assert stats.variance is not None
    assert math.sqrt(stats.variance / stats.n) > 5 * per_run_se  # 0.242 against 0.031


def test_one_run_per_user_is_analysed_exactly_as_runs() -> None:
    n = np.ones(40)
    s = np.array([1.0] * 13 + [0.0] * 27)
    assert _sums(n, s).as_metric_stats("proportion") == ProportionStats(n=40, successes=13)
    values = np.linspace(0.5, 4.5, 40)
    mean = _sums(n, values).as_metric_stats("mean")
    assert mean == MeanStats(n=40, total=float(values.sum()), total_sq=float((values**2).sum()))


def test_units_from_two_steps_merge_by_adding() -> None:
    a = _sums(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    b = _sums(np.array([3.0]), np.array([2.0]))
    assert (a + b) == _sums(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 2.0]))


@pytest.mark.parametrize(
    "stats",
    [
        UnitStats(units=2, sum_n=2, sum_s=math.inf, sum_nn=2, sum_ss=math.inf, sum_sn=math.inf),
        UnitStats(units=2, sum_n=2, sum_s=5, sum_nn=2, sum_ss=5, sum_sn=5),  # 5 successes of 2
    ],
)
def test_sums_no_sample_can_have_are_reported_not_raised(stats: UnitStats) -> None:
    assert stats.as_metric_stats("proportion") is None


def test_an_arm_without_units_is_empty() -> None:
    assert UnitStats().as_metric_stats("proportion") == ProportionStats()
    assert UnitStats().as_metric_stats("mean") == MeanStats()


def test_a_ratio_carries_kishs_effective_units() -> None:
    # One user with 200 runs among 40 with one to three: (ΣN)² / ΣN², by hand.
    n = np.array([200.0] + [1.0 + i % 3 for i in range(40)])
    s = np.array([200.0] + [0.0] * 40)
    stats = _sums(n, s).as_metric_stats("proportion")
    assert isinstance(stats, RateOverUnits)
    assert effective_units(stats) == pytest.approx(n.sum() ** 2 / (n**2).sum())
    assert effective_units(stats) == pytest.approx(1.94, abs=0.01)  # of 41 users
    assert effective_units(ProportionStats(10, 3)) is None  # not a ratio: n is the units


def test_a_rate_that_rests_on_one_heavy_user_is_not_tested() -> None:
    # Early in an A/A experiment: the heavy user (converts on all 200 runs) and four others in
    # one arm, five non-converting users in the other. Over runs or by the delta method on 5
    # units this read as a 98-point effect, "significant"; it rests on 1.4 effective units.
    heavy = _sums(np.array([200.0, 1, 2, 3, 1]), np.array([200.0, 0, 0, 0, 0]))
    light = _sums(np.array([1.0, 2, 3, 1, 2]), np.array([0.0] * 5))
    b, c = light.as_metric_stats("proportion"), heavy.as_metric_stats("proportion")
    assert b is not None and c is not None
    for test in (fixed_test, sequential_test):
        comparison = test(b, c, alpha=0.05, min_events=10)
        assert (comparison.reason, comparison.significant) == ("too_few_units", False)
    # A mean over units: too few effective units, whatever the spread says.
    latency = _sums(np.array([200.0, 1, 2]), np.array([400.0, 1, 2])).as_metric_stats("mean")
    assert isinstance(latency, MeanOverUnits)
    many = _sums(np.ones(50) * 2, np.linspace(1, 3, 50) * 2).as_metric_stats("mean")
    assert many is not None
    assert fixed_test(many, latency, min_events=10).reason == "too_few_units"
    assert fixed_test(many, many, min_events=10).reason == "ok"
