"""Asymptotic confidence sequences: the paper's formula by hand, the mSPRT identity, the
one-sided half-normal mixture by numerical integration, and validity under peeking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from analysis.sequential import DEFAULT_TUNING_RUNS, rho_for_runs, sequential_test
from analysis.significance import two_proportion_z_test, welch_t_test
from analysis.stats import MeanStats, ProportionStats

B, C = ProportionStats(1000, 100), ProportionStats(900, 120)
ALPHA = 0.05


def _hand(b: ProportionStats, c: ProportionStats, rho: float) -> tuple[float, float, float]:
    """Effect, variance of its estimate, and t for two proportions (Bernoulli variances)."""
    pb, pc = b.successes / b.n, c.successes / c.n
    variance = pb * (1 - pb) / b.n + pc * (1 - pc) / c.n
    return pc - pb, variance, b.n + c.n


def test_rho_for_runs_is_the_papers_approximation() -> None:
    # ρ² = (2 log(1/α) + log(1 + 2 log(1/α)))/t⋆
    expected = math.sqrt((2 * math.log(20) + math.log(1 + 2 * math.log(20))) / 10_000)
    assert rho_for_runs(10_000, 0.05) == pytest.approx(expected)
    assert rho_for_runs(0) is None
    assert rho_for_runs(100, 1.5) is None


def test_two_sided_sequence_is_theorem_2_2_by_hand() -> None:
    rho = rho_for_runs(DEFAULT_TUNING_RUNS, ALPHA)
    assert rho is not None
    d, variance, t = _hand(B, C, rho)
    sigma = math.sqrt(t * variance)  # σ̂: per-unit standard deviation of the difference
    # μ̂ ± σ̂ √( 2(tρ² + 1)/(t²ρ²) · log(√(tρ² + 1)/α) )
    half = sigma * math.sqrt(
        2 * (t * rho**2 + 1) / (t**2 * rho**2) * math.log(math.sqrt(t * rho**2 + 1) / ALPHA)
    )
    result = sequential_test(B, C)
    assert result.method == "asymptotic_cs"
    assert result.ok
    assert result.effect == pytest.approx(d)
    assert (result.ci_low, result.ci_high) == pytest.approx((d - half, d + half), rel=1e-12)


def test_p_value_is_the_normal_mixture_msprt_of_johari_et_al() -> None:
    rho = 0.05
    d, variance, t = _hand(B, C, rho)
    sigma_sq = t * variance
    tau_sq = rho**2 * sigma_sq  # the mSPRT's mixing variance on the effect scale
    # Λ_t = √(σ²/(σ² + tτ²)) · exp( t²τ² d² / (2σ²(σ² + tτ²)) ),  p = min(1, 1/Λ_t)
    lam = math.sqrt(sigma_sq / (sigma_sq + t * tau_sq)) * math.exp(
        t**2 * tau_sq * d**2 / (2 * sigma_sq * (sigma_sq + t * tau_sq))
    )
    result = sequential_test(B, C, rho=rho)
    assert result.p_value == pytest.approx(min(1.0, 1 / lam), rel=1e-10)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_one_sided_p_value_is_the_half_normal_mixture(alternative: str) -> None:
    rho = 0.04
    b, c = ProportionStats(2000, 200), ProportionStats(2000, 236)
    d, variance, t = _hand(b, c, rho)
    z = d / math.sqrt(variance) * (1 if alternative == "greater" else -1)
    s = z * math.sqrt(t)  # the standardised sum S_t

    def integrand(lam: float) -> float:  # 2·N(0, ρ²) density on λ > 0 times exp(λS − λ²t/2)
        return float(2 * sps.norm.pdf(lam, 0, rho) * math.exp(lam * s - lam * lam * t / 2))

    mixture, _ = integrate.quad(integrand, 0, 20 * rho, epsabs=0, epsrel=1e-11, limit=200)
    result = sequential_test(b, c, rho=rho, alternative=alternative)  # type: ignore[arg-type]
    assert result.p_value == pytest.approx(min(1.0, 1 / mixture), rel=1e-7)


def test_one_sided_bound_is_where_the_p_value_reaches_alpha() -> None:
    result = sequential_test(B, C, alternative="greater")
    assert result.ci_low is not None
    assert result.ci_high is None
    at_bound = sequential_test(B, C, alternative="greater", null=result.ci_low)
    assert at_bound.p_value == pytest.approx(ALPHA, rel=1e-6)
    # one-sided is tighter than two-sided, looser than the fixed-horizon one-sided bound
    two = sequential_test(B, C)
    fixed = two_proportion_z_test(B, C, alternative="greater")
    assert two.ci_low is not None
    assert fixed.ci_low is not None
    assert two.ci_low < result.ci_low < fixed.ci_low


@pytest.mark.parametrize("n", [20, 200, 2_000, 20_000, 2_000_000])
def test_the_sequence_is_always_wider_than_the_fixed_interval(n: int) -> None:
    b, c = ProportionStats(n, n // 10), ProportionStats(n, n // 8)
    seq, fixed = sequential_test(b, c), two_proportion_z_test(b, c)
    assert seq.ci_low is not None
    assert fixed.ci_low is not None
    assert seq.ci_low < fixed.ci_low
    assert seq.p_value is not None
    assert fixed.p_value is not None
    assert seq.p_value >= fixed.p_value


@pytest.mark.parametrize("null", [-0.02, 0.0, 0.01, 0.03, 0.06])
@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_significance_is_the_null_outside_the_sequence(null: float, scale: str) -> None:
    result = sequential_test(B, C, null=null, scale=scale)  # type: ignore[arg-type]
    low, high = (
        (result.ci_low, result.ci_high)
        if scale == "absolute"
        else (result.relative_ci_low, result.relative_ci_high)
    )
    assert low is not None
    assert high is not None
    assert result.significant == (not low <= null <= high)


def test_relative_sequence_uses_the_delta_method_variance() -> None:
    result = sequential_test(B, C, rho=0.05)
    pb, pc = 0.1, 120 / 900
    var_b, var_c = pb * (1 - pb) / 1000, pc * (1 - pc) / 900
    rel_se = math.sqrt(var_c / pb**2 + pc**2 * var_b / pb**4)
    assert result.relative_std_error == pytest.approx(rel_se)
    assert result.std_error is not None
    assert result.relative_effect is not None
    assert result.relative_ci_high is not None
    mult = (result.relative_ci_high - result.relative_effect) / rel_se
    assert result.ci_high is not None
    assert result.effect is not None
    assert mult == pytest.approx((result.ci_high - result.effect) / result.std_error)


@pytest.mark.parametrize("rho", [0.0, -1.0, math.nan, math.inf, 1e-200, 1e200])
def test_an_unusable_rho_is_an_invalid_parameter(rho: float) -> None:
    result = sequential_test(B, C, rho=rho)
    assert result.reason == "invalid_parameter"
    assert result.p_value is None


def test_degenerate_arms_give_reasons() -> None:
    assert sequential_test(ProportionStats(), ProportionStats()).reason == "no_data"
    assert sequential_test(ProportionStats(10, 0), ProportionStats(10, 0)).reason == (
        "zero_variance"
    )
    assert sequential_test(MeanStats.from_values([1.0]), MeanStats()).reason == "arm_empty"


def test_peeking_keeps_false_decisions_near_alpha_where_the_fixed_test_does_not() -> None:
    """A/A: 300 experiments looked at after each of 25 batches of 40 runs per arm."""
    rng = np.random.default_rng(7)
    experiments, looks, batch = 300, 25, 40
    x = rng.normal(5.0, 2.0, size=(experiments, 2, looks * batch))
    seq_hits = fixed_hits = 0
    for e in range(experiments):
        sums = np.cumsum(x[e], axis=1)[:, batch - 1 :: batch]
        squares = np.cumsum(x[e] ** 2, axis=1)[:, batch - 1 :: batch]
        seq = fixed = False
        for k in range(looks):
            n = (k + 1) * batch
            b = MeanStats(n, float(sums[0, k]), float(squares[0, k]))
            c = MeanStats(n, float(sums[1, k]), float(squares[1, k]))
            seq = seq or sequential_test(b, c, tuning_runs=1000).significant
            fixed = fixed or welch_t_test(b, c).significant
        seq_hits += seq
        fixed_hits += fixed
    assert seq_hits / experiments <= 0.06  # alpha plus Monte-Carlo noise (typically ~0.01)
    assert fixed_hits / experiments >= 0.12  # peeking a fixed test: 2–5 × alpha


def test_intervals_of_rates_stay_within_what_rates_allow() -> None:
    # 1/10 against 9/10: the normal approximation would reach past +100 points
    result = sequential_test(ProportionStats(10, 1), ProportionStats(10, 9), tuning_runs=100)
    assert result.ci_high == 1.0
    assert result.ci_low is not None
    assert result.ci_low > -1.0
    worse = sequential_test(ProportionStats(10, 9), ProportionStats(10, 1), tuning_runs=100)
    assert worse.ci_low == -1.0
    assert worse.relative_ci_low == -1.0  # a rate cannot fall by more than 100 %
