"""Fixed-horizon tests: golden values from scipy, statsmodels and the formulas by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import proportion as smp  # a module: pytest would collect test_* names

from analysis.comparison import Alternative
from analysis.significance import fixed_test, two_proportion_z_test, welch_t_test
from analysis.stats import MeanStats, ProportionStats

ALTERNATIVES: list[Alternative] = ["two-sided", "greater", "less"]
SM_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}

rng = np.random.default_rng(20240611)
BASE_VALUES = rng.normal(10.0, 2.0, 57)
CAND_VALUES = rng.lognormal(2.35, 0.3, 83)
BASE, CAND = MeanStats.from_values(BASE_VALUES), MeanStats.from_values(CAND_VALUES)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_welch_matches_scipy_from_stats_and_from_data(alternative: Alternative) -> None:
    result = welch_t_test(BASE, CAND, alternative=alternative)
    assert CAND.std is not None
    assert BASE.std is not None
    ref = sps.ttest_ind_from_stats(
        CAND.mean, CAND.std, CAND.n, BASE.mean, BASE.std, BASE.n, equal_var=False,
        alternative=alternative,
    )  # fmt: skip
    assert result.ok
    assert result.method == "welch_t"
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    interval = sps.ttest_ind(
        CAND_VALUES, BASE_VALUES, equal_var=False, alternative=alternative
    ).confidence_interval(0.95)
    for ours, theirs in ((result.ci_low, interval.low), (result.ci_high, interval.high)):
        if math.isinf(theirs):
            assert ours is None  # a one-sided interval is unbounded on the far side
        else:
            assert ours == pytest.approx(theirs, rel=1e-9)
    assert result.significant == (ref.pvalue < 0.05)


def test_welch_by_hand() -> None:
    # two small samples, every step written out
    b, c = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0]
    mb, vb, nb = 2.5, 5 / 3, 4
    mc, vc, nc = 4.0, 4.0, 3
    se = math.sqrt(vb / nb + vc / nc)
    t = (mc - mb) / se
    df = (vb / nb + vc / nc) ** 2 / ((vb / nb) ** 2 / (nb - 1) + (vc / nc) ** 2 / (nc - 1))
    p = 2 * sps.t.sf(abs(t), df)
    half = sps.t.ppf(0.975, df) * se
    result = welch_t_test(MeanStats.from_values(b), MeanStats.from_values(c))
    assert result.statistic == pytest.approx(t)
    assert result.p_value == pytest.approx(p)
    assert (result.ci_low, result.ci_high) == pytest.approx((1.5 - half, 1.5 + half))
    # relative effect: r = m_c/m_b − 1, delta-method se, same t quantile
    rel_se = math.sqrt((vc / nc) / mb**2 + mc**2 * (vb / nb) / mb**4)
    assert result.relative_effect == pytest.approx(mc / mb - 1)
    assert result.relative_std_error == pytest.approx(rel_se)
    assert result.relative_ci_low == pytest.approx(0.6 - sps.t.ppf(0.975, df) * rel_se)


def test_welch_with_a_margin_on_the_relative_scale() -> None:
    # H1: the candidate is more than 5 % above the baseline: z = (r − 0.05)/se_r
    result = welch_t_test(BASE, CAND, alternative="greater", null=0.05, scale="relative")
    assert result.relative_effect is not None
    assert result.relative_std_error is not None
    z = (result.relative_effect - 0.05) / result.relative_std_error
    assert result.statistic == pytest.approx(z)
    df = _welch_df(BASE, CAND)
    assert result.p_value == pytest.approx(sps.t.sf(z, df))
    assert result.significant == (result.relative_ci_low is not None and
                                  result.relative_ci_low > 0.05)  # fmt: skip


def _welch_df(b: MeanStats, c: MeanStats) -> float:
    assert b.variance is not None
    assert c.variance is not None
    vb, vc = b.variance / b.n, c.variance / c.n
    return (vb + vc) ** 2 / (vb**2 / (b.n - 1) + vc**2 / (c.n - 1))


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("null", [0.0, 0.01, -0.02])
def test_z_test_matches_statsmodels_wald(alternative: Alternative, null: float) -> None:
    b, c = ProportionStats(1000, 100), ProportionStats(900, 120)
    result = two_proportion_z_test(b, c, alternative=alternative, null=null)
    ref = smp.test_proportions_2indep(
        120, 900, 100, 1000, value=null, method="wald", compare="diff",
        alternative=SM_ALTERNATIVE[alternative],
    )  # fmt: skip
    assert result.method == "two_proportion_z"
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_z_test_interval_matches_statsmodels_and_the_pooled_test_matches_proportions_ztest() -> (
    None
):
    b, c = ProportionStats(1000, 100), ProportionStats(900, 120)
    result = two_proportion_z_test(b, c)
    low, high = smp.confint_proportions_2indep(120, 900, 100, 1000, method="wald", compare="diff")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)
    pooled = two_proportion_z_test(b, c, pooled=True)
    z, p = smp.proportions_ztest([120, 100], [900, 1000])
    assert pooled.method == "two_proportion_z_pooled"
    assert pooled.statistic == pytest.approx(z, rel=1e-10)
    assert pooled.p_value == pytest.approx(p, rel=1e-9)
    assert (pooled.ci_low, pooled.ci_high) == (result.ci_low, result.ci_high)
    # by hand: p̄ = 220/1900, z = (0.1333 − 0.1)/√(p̄q̄(1/1000 + 1/900))
    p_bar = 220 / 1900
    assert pooled.statistic == pytest.approx(
        (120 / 900 - 0.1) / math.sqrt(p_bar * (1 - p_bar) * (1 / 1000 + 1 / 900))
    )


def test_fixed_test_picks_the_test_for_the_kind() -> None:
    assert fixed_test(ProportionStats(50, 5), ProportionStats(50, 9)).method == "two_proportion_z"
    assert fixed_test(BASE, CAND).method == "welch_t"
    mixed = fixed_test(ProportionStats(50, 5), MeanStats.from_values([0.0, 1.0, 1.0]))
    assert mixed.method == "welch_t"


@pytest.mark.parametrize(
    ("b", "c", "reason"),
    [
        (MeanStats(), MeanStats(), "no_data"),
        (MeanStats(), MeanStats.from_values([1.0, 2.0]), "arm_empty"),
        (MeanStats.from_values([1.0, 2.0]), MeanStats(), "arm_empty"),
        (MeanStats.from_values([1.0]), MeanStats.from_values([1.0, 2.0]), "too_few_runs"),
        (MeanStats.from_values([3.0] * 5), MeanStats.from_values([4.0] * 9), "zero_variance"),
    ],
)
def test_degenerate_means_give_a_reason_and_no_numbers(
    b: MeanStats, c: MeanStats, reason: str
) -> None:
    result = welch_t_test(b, c)
    assert result.reason == reason
    assert not result.ok
    assert result.p_value is None
    assert result.ci_low is None
    assert result.statistic is None
    assert not result.significant


def test_zero_variance_keeps_the_means_and_their_difference() -> None:
    result = welch_t_test(MeanStats.from_values([3.0] * 5), MeanStats.from_values([4.0] * 9))
    assert (result.mean_baseline, result.mean_candidate, result.effect) == (3.0, 4.0, 1.0)


def test_proportions_with_no_successes_anywhere_have_zero_variance() -> None:
    result = two_proportion_z_test(ProportionStats(500, 0), ProportionStats(400, 0), pooled=True)
    assert result.reason == "zero_variance"
    assert result.p_value is None


def test_relative_scale_on_a_zero_baseline_says_so() -> None:
    b, c = ProportionStats(500, 0), ProportionStats(400, 12)
    result = two_proportion_z_test(b, c, scale="relative")
    assert result.reason == "baseline_zero"
    absolute = two_proportion_z_test(b, c)
    assert absolute.ok
    assert absolute.relative_effect is None  # the test stands; only the ratio is undefined


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": 0.0}, {"alpha": 1.0}, {"alpha": math.nan}, {"null": math.inf},
     {"alternative": "sideways"}, {"scale": "log"}],
)  # fmt: skip
def test_invalid_parameters_give_a_reason(kwargs: dict[str, object]) -> None:
    result = welch_t_test(BASE, CAND, **kwargs)  # type: ignore[arg-type]
    assert result.reason == "invalid_parameter"
    assert result.p_value is None
