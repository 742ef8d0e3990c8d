"""Holm's step-down and Benjamini–Hochberg's step-up adjustments against statsmodels and by
hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.decision import decide
from analysis.multiple import adjust, benjamini_hochberg, holm
from analysis.spec import ArmSpec, ExperimentSpec, PrimaryMetric
from analysis.stats import ArmData, ProportionStats


@pytest.mark.parametrize("seed", range(5))
def test_matches_statsmodels_holm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.02, 3), rng.uniform(0, 1, 7)])
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
    result = holm(list(p), 0.05)
    assert result.adjusted == pytest.approx(list(adjusted), rel=1e-12)
    assert list(result.reject) == list(reject)
    assert result.tested == 10


def test_by_hand() -> None:
    # sorted 0.01, 0.02, 0.04 with m = 3: 3·0.01 = 0.03, max(0.03, 2·0.02) = 0.04, max(0.04, 0.04)
    result = holm([0.04, 0.01, 0.02], 0.05)
    assert result.adjusted == pytest.approx((0.04, 0.03, 0.04))
    assert result.reject == (True, True, True)
    capped = holm([0.5, 0.6], 0.05)
    assert capped.adjusted == pytest.approx((1.0, 1.0))  # min(1, 2·0.5), then the running max


def test_untestable_comparisons_are_left_out_of_the_family() -> None:
    result = holm([0.01, None, 0.04, math.nan, 1.5], 0.05)
    assert result.tested == 2
    assert result.adjusted[1] is None
    assert result.adjusted[3] is None
    assert result.adjusted[4] is None
    assert result.adjusted[0] == pytest.approx(0.02)
    assert result.reject == (True, False, True, False, False)


def test_empty_and_bad_alpha() -> None:
    assert holm([]).adjusted == ()
    assert holm([0.001], alpha=0.0).reject == (False,)


@pytest.mark.parametrize("seed", range(5))
def test_benjamini_hochberg_matches_statsmodels_fdr_bh(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(0, 0.02, 4), rng.uniform(0, 1, 8)])
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    result = benjamini_hochberg(list(p), 0.05)
    assert result.adjusted == pytest.approx(list(adjusted), rel=1e-12)
    assert list(result.reject) == list(reject)
    assert (result.tested, result.method) == (12, "benjamini_hochberg")
    assert adjust(list(p), 0.05, "benjamini_hochberg") == result
    assert adjust(list(p), 0.05, "holm") == holm(list(p), 0.05)


def test_benjamini_hochberg_by_hand() -> None:
    # sorted 0.01, 0.02, 0.04, 0.30 with m = 4: m/i·p = 0.04, 0.04, 0.0533, 0.30; the running
    # minimum from the top leaves them; Holm would give 0.04, 0.06, 0.08, 0.30
    result = benjamini_hochberg([0.04, 0.30, 0.01, 0.02], 0.05)
    assert result.adjusted == pytest.approx((0.04 * 4 / 3, 0.30, 0.04, 0.04))
    assert result.reject == (False, False, True, True)
    assert holm([0.04, 0.30, 0.01, 0.02], 0.05).reject == (False, False, True, False)
    # the step-up minimum: a smaller p-value never gets a larger adjusted one
    assert benjamini_hochberg([0.03, 0.031], 0.05).adjusted == pytest.approx((0.031, 0.031))


def test_benjamini_hochberg_leaves_untestable_comparisons_out() -> None:
    result = benjamini_hochberg([0.01, None, 0.04, math.nan, 1.5], 0.05)
    assert result.tested == 2
    assert result.adjusted == pytest.approx((0.02, None, 0.04, None, None))
    assert benjamini_hochberg([0.001], alpha=1.0).reject == (False,)
    assert benjamini_hochberg([]).adjusted == ()


def test_decide_applies_the_correction_the_spec_names() -> None:
    # three candidates at p ≈ 0.023, 0.033, 0.040 (fixed test): Holm withholds (3 × 0.023 >
    # 0.05), Benjamini–Hochberg promotes (the step-up minimum leaves 0.040 for all three)
    spec = ExperimentSpec(
        baseline=ArmSpec("v1", 1),
        candidates=(ArmSpec("v2", 1), ArmSpec("v3", 1), ArmSpec("v4", 1)),
        # Planned for 2 points: about 3,200 runs per arm, so 5,000 is past the fixed horizon.
        primary=PrimaryMetric(name="ok", mde=0.02),
        method="fixed",
    )
    data = {
        name: ArmData(5000, {"ok": ProportionStats(5000, ok)})
        for name, ok in (("v1", 4500), ("v2", 4566), ("v3", 4562), ("v4", 4560))
    }
    held = decide(spec, data)
    p = [r.p_value for r in held.results if r.arm != "v1"]
    assert all(v is not None and 0.02 < v < 0.045 for v in p)
    assert held.action == "continue"
    assert "not significant after Holm" in held.summary
    bh = decide(dataclasses.replace(spec, correction="benjamini_hochberg"), data)
    assert (bh.action, bh.winner) == ("promote", "v2")
    assert "Benjamini–Hochberg-adjusted p = " in bh.summary
    bad = decide(dataclasses.replace(spec, correction="bonferroni"), data)  # type: ignore[arg-type]
    assert bad.codes == ("invalid_spec",)
