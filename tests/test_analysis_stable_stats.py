"""Numerically stable sufficient statistics (mean and M2, Welford and Chan et al.), and what
damaged sums become: golden values computed exactly (fractions) or by numpy on exact
deviations; every way in (raw sums, shifted sums, moments, values, add, merge) agrees."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.decision import decide
from analysis.sequential import sequential_test
from analysis.significance import fixed_test, welch_t_test
from analysis.spec import ArmSpec, ExperimentSpec, Guardrail, PrimaryMetric
from analysis.stats import ArmData, MeanStats, ProportionStats

rng = np.random.default_rng(20261121)
OFFSET = 1e12
NOISE = rng.normal(0.0, 1.0, 10_000)
LARGE = OFFSET + NOISE  # 1e12-scale values with a spread of 1
# x − 1e12 is exact here (Sterbenz), so numpy on the deviations is the truth to ~1e-15
TRUE_VARIANCE = float(np.var(LARGE - OFFSET, ddof=1))
TRUE_MEAN_OFFSET = float(np.mean(LARGE - OFFSET))


def _variance(stats: MeanStats) -> float:
    assert stats.variance is not None
    return stats.variance


def test_values_near_1e12_keep_their_spread_every_way_in() -> None:
    values = [float(x) for x in LARGE]
    from_values = MeanStats.from_values(values)
    welford = MeanStats()
    for x in values:
        welford = welford.add(x)
    halves = MeanStats.from_values(values[:3_000]).merge(MeanStats.from_values(values[3_000:]))
    k = values[0]  # a store's shift: the first value it saw
    shifted = MeanStats(len(values), sum(x - k for x in values),
                        sum((x - k) * (x - k) for x in values), shift=k)  # fmt: skip
    for stats in (from_values, welford, halves, shifted):
        assert stats.n == 10_000
        assert _variance(stats) == pytest.approx(TRUE_VARIANCE, rel=1e-9)
        assert stats.mean is not None
        assert stats.mean - OFFSET == pytest.approx(TRUE_MEAN_OFFSET, abs=2e-4)  # 1e12's ulp


def test_raw_sums_at_1e12_cannot_hold_the_spread_which_is_why_the_form_changed() -> None:
    values = [float(x) for x in LARGE]
    raw = MeanStats(len(values), math.fsum(values), math.fsum(x * x for x in values))
    # Σx² ≈ 1e28 has an ulp of ~2e12: the whole spread (Σ(x − m)² ≈ 1e4) is below its rounding
    assert raw.variance is None or abs(raw.variance - TRUE_VARIANCE) > 0.5 * TRUE_VARIANCE


def test_a_billion_observations_merge_to_the_exact_moments() -> None:
    # 1,000 shards of a million observations, each with mean 1e12 + i/1000 and M2 = 1e6
    shards = [MeanStats.from_moments(10**6, OFFSET + i / 1000, 1e6) for i in range(1000)]
    merged = MeanStats()
    for shard in shards:
        merged = merged.merge(shard)
    # the truth, in exact rationals of the same doubles: M2 = ΣM2ᵢ + Σnᵢ(mᵢ − m)²
    means = [Fraction(s.center) for s in shards]
    grand = sum(means) / len(means)
    m2 = sum(Fraction(s.m2) for s in shards) + 10**6 * sum((m - grand) ** 2 for m in means)
    assert merged.n == 10**9
    assert merged.m2 == pytest.approx(float(m2), rel=1e-9)
    assert merged.center == pytest.approx(float(grand), rel=1e-15)
    assert _variance(merged) == pytest.approx(float(m2) / (10**9 - 1), rel=1e-9)
    # ≈ 1 + Σ(i − 499.5)²/10⁹ by hand: the shards' spread and the spread of their means
    assert _variance(merged) == pytest.approx(1 + 83_333_250 / 1e9, rel=1e-6)


def test_a_low_coefficient_of_variation_at_a_billion_runs_is_spread_not_zero() -> None:
    # mean 3.0, sd 0.002 (CV 0.07 %) over 10⁹ runs, as raw sums: Σx = 3e9, Σx² = (n−1)s² + n·m².
    # The old n-scaled tolerance (4nε·Σx² ≈ 8,000 > the spread, 4,000) read "zero_variance".
    n = 10**9
    stats = MeanStats(n, 3.0 * n, (n - 1) * 0.002**2 + 9.0 * n)
    assert _variance(stats) == pytest.approx(4e-6, rel=1e-6)
    other = MeanStats(n, 3.0001 * n, (n - 1) * 0.002**2 + 3.0001**2 * n)
    result = welch_t_test(stats, other)
    assert result.ok
    assert result.significant  # 0.0001 is 50 standard errors at this n


def test_constant_data_accumulated_naively_reads_as_no_spread_not_as_damage() -> None:
    total = total_sq = 0.0
    for _ in range(100_000):  # as a store adds, one observation at a time
        total += 0.1
        total_sq += 0.01
    stats = MeanStats(100_000, total, total_sq)
    assert stats.defect is None
    assert _variance(stats) <= 1e-9 * 0.01


@pytest.mark.parametrize(
    ("stats", "defect"),
    [
        (MeanStats(10, 10.0, 5.0), "inconsistent_sums"),  # Σx² = 5 < (Σx)²/n = 10
        (MeanStats(3, 3.0, 3.0 - 1e-6), "inconsistent_sums"),  # beyond any rounding
        (MeanStats(1, 3.0, 10.0), "inconsistent_sums"),  # one value has no spread
        (MeanStats(2, math.inf, math.inf), "not_finite"),  # 1e308 twice, as raw sums
        (MeanStats(2, 1.0, math.nan), "not_finite"),
        (MeanStats(2, 1.0, 1.0, shift=math.inf), "not_finite"),
        (MeanStats.from_moments(4, 1.0, -2.0), "inconsistent_sums"),
        (MeanStats.from_values([1.0, math.nan]), "not_finite"),
        (MeanStats().add(math.inf), "not_finite"),
        (MeanStats.from_values([1e308]).merge(MeanStats.from_values([-1e308])), "not_finite"),
    ],
)
def test_damaged_statistics_give_a_reason_code_and_never_raise(
    stats: MeanStats, defect: str
) -> None:
    assert stats.defect == defect
    assert stats.variance is None
    good = MeanStats.from_values([1.0, 2.0, 3.0])
    for result in (
        welch_t_test(good, stats),
        sequential_test(stats, good),
        fixed_test(good, stats, scale="relative"),
    ):
        assert result.reason == defect
        assert result.p_value is None
        assert result.mean_baseline is None or math.isfinite(result.mean_baseline)
        assert result.mean_candidate is None or math.isfinite(result.mean_candidate)
    assert stats.merge(good).defect == defect  # a damaged shard damages the whole


def test_an_outcome_of_1e308_leaves_the_experiment_decidable() -> None:
    # Issue 12: {"m": 1e308} on two runs made results and the evaluator raise for good.
    spec = ExperimentSpec(
        baseline=ArmSpec("v1", 0.5),
        candidates=(ArmSpec("v2", 0.5),),
        primary=PrimaryMetric(name="m", kind="mean", mde=0.1),
        guardrails=(Guardrail(name="ok", margin=0.01),),
    )
    stored = MeanStats(2, 1e308 + 1e308, 1e308 * 1e308)  # what raw sums in a store hold
    decision = decide(spec, {
        "v1": ArmData(500, {"m": MeanStats.from_values([1.0, 2.0] * 250),
                            "ok": ProportionStats(500, 450)}),
        "v2": ArmData(500, {"m": stored, "ok": ProportionStats(500, 455)}),
    })  # fmt: skip
    assert decision.action == "continue"
    assert decision.codes == ("primary_not_evaluable",)
    assert "(not finite)" in decision.summary
    # the stable form keeps 1e308 itself: two equal values have a mean and no spread
    assert MeanStats.from_values([1e308, 1e308]).mean == 1e308


def test_the_constructors_callers_use_still_work() -> None:
    # control_plane/experiments/results.py builds from stored sums by keyword
    stats = MeanStats(n=4, total=10.0, total_sq=30.0)
    assert (stats.mean, stats.total, stats.total_sq) == (2.5, 10.0, 30.0)
    assert _variance(stats) == pytest.approx(np.var([1, 2, 3, 4], ddof=1))
    assert MeanStats(n=4, total=10.0, total_sq=30.0) == stats  # frozen data, compared by value
    for same in (
        MeanStats.from_moments(4, 2.5, 5.0),
        MeanStats(4, 2.0, 6.0, shift=2.0),  # Σ(x − 2) = 2, Σ(x − 2)² = 6: the same sample
        MeanStats.from_values([1.0, 2.0, 3.0, 4.0]),
    ):
        assert (same.n, same.mean, same.m2, same.variance) == (4, 2.5, 5.0, stats.variance)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.n = 5  # type: ignore[misc]


FLOATS = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(FLOATS, min_size=1, max_size=40), st.lists(FLOATS, min_size=1, max_size=40),
       st.floats(-1e12, 1e12, allow_nan=False))  # fmt: skip
def test_every_way_in_agrees(left: list[float], right: list[float], offset: float) -> None:
    left = [x + offset for x in left]
    right = [x + offset for x in right]
    whole = MeanStats.from_values(left + right)
    merged = MeanStats.from_values(left).merge(MeanStats.from_values(right))
    grown = MeanStats()
    for x in left + right:
        grown = grown.add(x)
    exact = [Fraction(x) for x in left + right]
    mean = sum(exact) / len(exact)
    m2 = float(sum((x - mean) ** 2 for x in exact))
    # the spread is known to the precision of the values themselves (|x|·ε each)
    scale = max(abs(x) for x in left + right)
    tolerance = (
        64 * len(exact) * (scale * 2.0**-52) ** 2
        + 1e-9 * m2
        + 4 * scale * 2.0**-52 * (math.sqrt(m2 * len(exact)))
    )
    for stats in (whole, merged, grown):
        assert stats.n == len(exact)
        assert stats.defect is None
        assert stats.center == pytest.approx(float(mean), abs=4 * scale * 2.0**-52)
        assert abs(stats.m2 - m2) <= tolerance


DAMAGED = st.sampled_from([math.inf, -math.inf, math.nan, -1.0, 1e308])


@settings(max_examples=100, deadline=None)
@given(DAMAGED, DAMAGED, st.integers(1, 10**9), st.sampled_from(["fixed", "sequential"]))
def test_decide_never_raises_on_damaged_sums(
    total: float, total_sq: float, n: int, method: str
) -> None:
    spec = ExperimentSpec(
        baseline=ArmSpec("a", 1),
        candidates=(ArmSpec("b", 1),),
        primary=PrimaryMetric(name="m", kind="mean", mde=0.1),
        guardrails=(Guardrail(name="g", kind="mean", margin=0.1, margin_relative=True),),
        method=method,  # type: ignore[arg-type]
    )
    good = MeanStats(1000, 1000.0, 2000.0)
    bad = MeanStats(n, total, total_sq)  # damaged, or (1e308 and −1) merely absurd
    decision = decide(spec, {
        "a": ArmData(1000, {"m": good, "g": good}),
        "b": ArmData(1000, {"m": bad, "g": bad}),
    })  # fmt: skip
    assert decision.action in ("continue", "rollback")
    if bad.defect is not None:
        assert decision.action == "continue"
        assert {"primary_not_evaluable", "guardrail_not_evaluable"} >= set(decision.codes)
