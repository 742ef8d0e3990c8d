"""Sample ratio mismatch: chi-square against scipy, and every degenerate case with its code."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from analysis.srm import srm_check


def test_chi_square_matches_scipy() -> None:
    counts = {"v3.2": 9_120, "v3.3": 880}
    result = srm_check(counts, {"v3.2": 0.9, "v3.3": 0.1})
    ref = sps.chisquare([9_120, 880], f_exp=[9_000, 1_000])
    assert result.statistic == pytest.approx(ref.statistic)
    assert result.p_value == pytest.approx(ref.pvalue)
    assert result.df == 1
    assert result.expected == pytest.approx({"v3.2": 9_000, "v3.3": 1_000})
    # by hand: (120²/9000 + 120²/1000) = 1.6 + 14.4 = 16.0
    assert result.statistic == pytest.approx(16.0)
    assert result.flagged  # p ≈ 6e-5 < 0.001
    assert result.reason == "mismatch"


def test_three_arms_with_weights_not_summing_to_one() -> None:
    counts = {"a": 5_020, "b": 2_470, "c": 2_510}
    result = srm_check(counts, {"a": 2, "b": 1, "c": 1})
    ref = sps.chisquare([5_020, 2_470, 2_510], f_exp=[5_000, 2_500, 2_500])
    assert result.p_value == pytest.approx(ref.pvalue)
    assert result.df == 2
    assert not result.flagged
    assert result.reason == "ok"


def test_the_threshold_is_a_parameter() -> None:
    counts, shares = {"a": 1_050, "b": 950}, {"a": 1, "b": 1}
    p = sps.chisquare([1_050, 950]).pvalue  # ≈ 0.025
    assert not srm_check(counts, shares).flagged
    assert srm_check(counts, shares, threshold=0.05).flagged
    assert srm_check(counts, shares).p_value == pytest.approx(p)


def test_runs_in_an_arm_at_zero_share_are_a_mismatch() -> None:
    result = srm_check({"a": 100, "b": 100, "old": 3}, {"a": 1, "b": 1, "old": 0})
    assert result.flagged
    assert result.reason == "zero_share_with_runs"
    assert result.zero_share_arms == ("old",)
    assert result.p_value is None
    unconfigured = srm_check({"a": 100, "b": 100, "stray": 1}, {"a": 1, "b": 1})
    assert unconfigured.flagged
    assert unconfigured.zero_share_arms == ("stray",)


def test_a_zero_share_arm_without_runs_is_fine() -> None:
    result = srm_check({"a": 100, "b": 104, "old": 0}, {"a": 1, "b": 1, "old": 0})
    assert not result.flagged
    assert result.df == 1


@pytest.mark.parametrize(
    ("counts", "shares", "reason"),
    [
        ({"a": 0, "b": 0}, {"a": 1, "b": 1}, "no_data"),
        ({}, {"a": 1, "b": 1}, "no_data"),
        ({"a": 10}, {"a": 1}, "single_arm"),
        ({"a": 10, "b": 0}, {"a": 1, "b": 0}, "single_arm"),
        ({"a": 10, "b": 5}, {"a": 0, "b": 0}, "invalid_input"),
        ({"a": 10, "b": 5}, {"a": -1, "b": 2}, "invalid_input"),
        ({"a": 10, "b": 5}, {"a": math.nan, "b": 2}, "invalid_input"),
        ({"a": -10, "b": 5}, {"a": 1, "b": 1}, "invalid_input"),
    ],
)
def test_degenerate_inputs_have_codes_and_no_numbers(
    counts: dict[str, int], shares: dict[str, float], reason: str
) -> None:
    result = srm_check(counts, shares)
    assert result.reason == reason
    assert not result.flagged
    assert result.p_value is None
    assert result.statistic is None


def test_an_arm_with_a_share_but_no_runs_is_a_mismatch_once_others_have_runs() -> None:
    result = srm_check({"a": 500}, {"a": 1, "b": 1})
    assert result.flagged
    assert result.observed == {"a": 500, "b": 0}
