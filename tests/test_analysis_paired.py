"""Paired tests golden-tested against scipy: the paired t-test as ``scipy.stats.ttest_rel``,
McNemar's exact test as ``scipy.stats.binomtest`` on the discordant pairs; degenerate input
gives a reason code, never an exception or a NaN."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as sps

from analysis.paired import mcnemar_exact, paired_t_test
from analysis.paired_sequential import paired_sequential
from analysis.paired_verdict import metric_verdict, overall_verdict


@pytest.mark.parametrize("seed", range(6))
def test_the_paired_t_test_is_scipys_ttest_rel(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([2, 3, 10, 57, 400])
    served = [rng.lognormvariate(0, 1) for _ in range(n)]
    shadow = [x * rng.uniform(0.7, 1.2) + rng.gauss(0, 0.1) for x in served]
    ours = paired_t_test(served, shadow)
    ref = sps.ttest_rel(shadow, served)
    assert ours.reason == "ok" and ours.n == n and ours.df == n - 1
    assert ours.statistic == pytest.approx(float(ref.statistic), rel=1e-10)
    assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-300)
    ci = ref.confidence_interval(0.95)
    assert ours.ci_low == pytest.approx(float(ci.low), rel=1e-9)
    assert ours.ci_high == pytest.approx(float(ci.high), rel=1e-9)
    assert ours.mean_difference == pytest.approx(sum(shadow) / n - sum(served) / n, rel=1e-9)


def test_a_golden_paired_t_test() -> None:
    # Student's sleep data (Cushny & Peebles; R's `t.test(extra ~ group, paired = TRUE)`):
    # t = -4.0621, df = 9, p-value = 0.002833.
    a = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    b = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    ours = paired_t_test(b, a)
    assert ours.statistic == pytest.approx(-4.0621, abs=1e-4)
    assert ours.p_value == pytest.approx(0.002833, abs=1e-6)
    assert ours.ci_low == pytest.approx(-2.4598858, abs=1e-6)
    assert ours.ci_high == pytest.approx(-0.7001142, abs=1e-6)


@pytest.mark.parametrize(("b", "c"), [(0, 1), (1, 1), (3, 12), (40, 25), (7, 0), (200, 230)])
def test_mcnemars_exact_test_is_the_binomial_test_on_discordant_pairs(b: int, c: int) -> None:
    concordant = 17
    served = [True] * b + [False] * c + [True] * concordant + [False] * 5
    shadow = [False] * b + [True] * c + [True] * concordant + [False] * 5
    ours = mcnemar_exact(served, shadow)
    ref = sps.binomtest(min(b, c), b + c, 0.5).pvalue
    assert (ours.served_only, ours.shadow_only, ours.reason) == (b, c, "ok")
    assert ours.p_value == pytest.approx(float(ref), rel=1e-12)
    assert ours.mean_difference == pytest.approx((c - b) / len(served))


def test_degenerate_input_has_a_reason_never_an_exception() -> None:
    assert paired_t_test([], []).reason == "no_pairs"
    assert paired_t_test([1.0], [2.0]).reason == "too_few_pairs"
    same = paired_t_test([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert (same.reason, same.mean_difference, same.p_value) == ("zero_variance", 0.5, None)
    big = paired_t_test([1e15 + i for i in range(5)], [1e15 + i + 0.25 for i in range(5)])
    assert big.reason == "zero_variance"
    assert paired_t_test([1.0, math.nan], [1.0, 2.0]).reason == "not_finite"
    assert paired_t_test([1.0, math.inf], [1.0, 2.0]).reason == "not_finite"
    assert mcnemar_exact([], []).reason == "no_pairs"
    agree = mcnemar_exact([True, False], [True, False])
    assert (agree.reason, agree.p_value, agree.mean_difference) == ("no_discordant_pairs", None, 0)
    with pytest.raises(ValueError, match="served values"):
        paired_t_test([1.0], [])
    with pytest.raises(ValueError, match="alpha"):
        paired_t_test([1.0, 2.0], [1.0, 3.0], alpha=1.5)


def test_verdicts_read_better_and_worse_by_the_metrics_direction() -> None:
    served = [1.0, 1.1, 0.9, 1.2, 1.0, 1.05, 0.95, 1.1]
    slower = paired_t_test(served, [x + 0.5 + 0.01 * i for i, x in enumerate(served)])
    assert "the shadow is worse by +0.5" in metric_verdict("latency_s", slower, better="lower")
    cheaper = paired_t_test(served, [x - 0.5 - 0.01 * i for i, x in enumerate(served)])
    assert "the shadow is better by -0.5" in metric_verdict("cost_usd", cheaper, better="lower")
    noise = paired_t_test(served, [x + (0.01 if i % 2 else -0.01) for i, x in enumerate(served)])
    assert "no significant difference" in metric_verdict("cost_usd", noise, better="lower")
    assert "no pairs yet" in metric_verdict("success", mcnemar_exact([], []), better="higher")
    line = overall_verdict([("latency_s", slower, "lower"), ("cost_usd", cheaper, "lower")])
    assert line.startswith("the shadow is worse on latency_s; better on cost_usd")
    assert overall_verdict([("success", mcnemar_exact([], []), "higher")]).startswith("no pairs")


def test_the_sequential_paired_test_is_the_closed_form_and_holds_its_interval() -> None:
    rng = random.Random(7)
    served = [rng.gauss(1.0, 0.3) for _ in range(200)]
    shadow = [x + 0.05 + rng.gauss(0, 0.2) for x in served]
    seq = paired_sequential(served, shadow, alpha=0.05, tuning_pairs=500)
    fixed = paired_t_test(served, shadow)
    assert seq.reason == "ok"
    assert fixed.sd_difference is not None and fixed.mean_difference is not None
    # The closed form, written out again: v = nρ², z = d̄/(s/√n).
    rho2 = (2 * math.log(20) + math.log1p(2 * math.log(20))) / 500
    v, se = 200 * rho2, fixed.sd_difference / math.sqrt(200)
    z, d = fixed.mean_difference / se, fixed.mean_difference
    expected = min(1.0, math.sqrt(1 + v) * math.exp(-z * z * v / (2 * (1 + v))))
    assert seq.p_value == pytest.approx(expected)
    half = se * math.sqrt(2 * (1 + v) / v * math.log(math.sqrt(1 + v) / 0.05))
    assert seq.ci_low == pytest.approx(d - half)
    assert seq.ci_high == pytest.approx(d + half)
    # Wider than the fixed-horizon interval: the price of looking at any time.
    assert seq.ci_low < fixed.ci_low < fixed.ci_high < seq.ci_high  # type: ignore[operator]
    assert paired_sequential([1.0, 2.0], [1.0, 2.0]).reason == "zero_variance"
    assert paired_sequential([], []).reason == "no_pairs"
    assert paired_sequential([0.0, 1.0, 2.0], [0.5, 0.5, 2.5]).p_value == 1.0  # d̄ = 0
