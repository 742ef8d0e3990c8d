"""Holm's step-down adjustment against statsmodels and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.multiple import holm


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
