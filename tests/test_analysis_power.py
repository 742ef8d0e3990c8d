"""Sample sizes against statsmodels' normal power and the formula by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from analysis.power import runs_for_mean, runs_for_proportion


def _z(alpha: float, power: float, two_sided: bool = True) -> float:
    return float(sps.norm.ppf(1 - (alpha / 2 if two_sided else alpha)) + sps.norm.ppf(power))


def test_means_by_hand() -> None:
    # n per arm = (z₀.₉₇₅ + z₀.₈)² · 2σ²/δ² = 7.849 · 2 · 0.25 / 0.01 ≈ 392.4 → 393
    size = runs_for_mean(baseline_mean=3.0, baseline_std=0.5, mde=0.1)
    n = _z(0.05, 0.8) ** 2 * 2 * 0.25 / 0.01
    assert size.ok
    assert size.baseline_runs == size.candidate_runs == math.ceil(n) == 393
    assert size.total_runs == 786
    assert size.absolute_effect == pytest.approx(0.1)


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
@pytest.mark.parametrize(("effect", "share"), [(0.1, 0.5), (0.25, 0.5), (0.1, 0.1), (0.05, 0.3)])
def test_means_match_statsmodels_normal_ind_power(
    alternative: str, effect: float, share: float
) -> None:
    ratio = share / (1 - share)  # statsmodels: nobs2 = ratio · nobs1 (nobs1 is the baseline)
    sm_alternative = "two-sided" if alternative == "two-sided" else "larger"
    ref = NormalIndPower().solve_power(
        effect_size=effect, alpha=0.05, power=0.8, ratio=ratio, alternative=sm_alternative
    )
    size = runs_for_mean(
        baseline_mean=10.0, baseline_std=1.0, mde=effect, alternative=alternative,  # type: ignore[arg-type]
        candidate_share=share,
    )  # fmt: skip
    assert size.baseline_runs is not None
    # statsmodels counts the far tail's tiny power too (two-sided), so it can be a run lower
    assert abs(size.baseline_runs - math.ceil(ref)) <= 1
    assert size.candidate_runs is not None
    assert abs(size.candidate_runs - math.ceil(ref * ratio)) <= 1
    zt = zt_ind_solve_power(
        effect_size=effect, alpha=0.05, power=0.8, ratio=ratio, alternative=sm_alternative
    )
    assert zt == pytest.approx(ref)


def test_relative_mde_on_means() -> None:
    absolute = runs_for_mean(baseline_mean=4.0, baseline_std=1.0, mde=0.2)
    relative = runs_for_mean(baseline_mean=4.0, baseline_std=1.0, mde=0.05, relative=True)
    assert relative.baseline_runs == absolute.baseline_runs


def test_proportions_by_hand_with_unpooled_variances() -> None:
    # 10 % → 8 %: n = (z₀.₉₇₅ + z₀.₈)² (0.1·0.9 + 0.08·0.92)/0.02² ≈ 3210.1 → 3211
    size = runs_for_proportion(baseline_rate=0.10, mde=-0.02)
    n = _z(0.05, 0.8) ** 2 * (0.1 * 0.9 + 0.08 * 0.92) / 0.02**2
    assert size.baseline_runs == math.ceil(n) == 3211
    relative = runs_for_proportion(baseline_rate=0.10, mde=-0.2, relative=True)
    assert relative.baseline_runs == size.baseline_runs
    assert relative.absolute_effect == pytest.approx(-0.02)


def test_proportions_match_statsmodels_with_the_equivalent_effect_size() -> None:
    # NormalIndPower assumes one σ; our unpooled variance is σ² = (p_b q_b + p_c q_c)/2
    p_b, p_c = 0.30, 0.33
    es = (p_c - p_b) / math.sqrt((p_b * (1 - p_b) + p_c * (1 - p_c)) / 2)
    ref = NormalIndPower().solve_power(effect_size=es, alpha=0.05, power=0.9, ratio=1)
    size = runs_for_proportion(baseline_rate=p_b, mde=0.03, power=0.9)
    assert size.baseline_runs is not None
    assert abs(size.baseline_runs - math.ceil(ref)) <= 1


def test_proportions_agree_with_cohens_h_within_a_few_percent() -> None:
    ref = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(0.10, 0.08), alpha=0.05, power=0.8
    )
    size = runs_for_proportion(baseline_rate=0.10, mde=-0.02)
    assert size.baseline_runs is not None
    assert size.baseline_runs == pytest.approx(ref, rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"baseline_rate": 0.1, "mde": 0.0}, "zero_effect"),
        ({"baseline_rate": 0.1, "mde": 1e-200}, "zero_effect"),
        ({"baseline_rate": 0.0, "mde": 0.1, "relative": True}, "baseline_zero"),
        ({"baseline_rate": 1.2, "mde": 0.1}, "rate_out_of_range"),
        ({"baseline_rate": 0.95, "mde": 0.1}, "rate_out_of_range"),
        ({"baseline_rate": 0.1, "mde": 0.01, "alpha": 0}, "invalid_parameter"),
        ({"baseline_rate": 0.1, "mde": 0.01, "power": 1}, "invalid_parameter"),
        ({"baseline_rate": 0.1, "mde": 0.01, "candidate_share": 1}, "invalid_parameter"),
        ({"baseline_rate": 0.1, "mde": math.nan}, "invalid_parameter"),
        ({"baseline_rate": 0.1, "mde": 1e-9}, "not_finite"),
    ],
)
def test_degenerate_proportion_inputs(kwargs: dict[str, object], reason: str) -> None:
    size = runs_for_proportion(**kwargs)  # type: ignore[arg-type]
    assert size.reason == reason
    assert size.baseline_runs is None
    assert size.total_runs is None


def test_degenerate_mean_inputs() -> None:
    assert runs_for_mean(baseline_mean=1, baseline_std=0, mde=0.1).reason == "zero_variance"
    assert runs_for_mean(baseline_mean=0, baseline_std=1, mde=0.1, relative=True).reason == (
        "baseline_zero"
    )
    assert runs_for_mean(baseline_mean=1, baseline_std=-1, mde=0.1).reason == "invalid_parameter"
    bad = runs_for_mean(baseline_mean=1, baseline_std=1, mde=0.1, alternative="up")  # type: ignore[arg-type]
    assert bad.reason == "invalid_parameter"
