"""The issue's verification, in the tests (the same simulation as ``benchmarks/analysis.py``):

* A/A: 1,000 experiments with no true difference, each decided after every one of 50 batches:
  the sequential method ever promotes or rolls back in at most alpha of them, while the fixed
  test peeked the same way goes well above alpha;
* power: a candidate whose conversion is 20 % worse (10 % → 8 %) is rolled back, never
  promoted, in nearly every experiment within the horizon.

Fixed seeds: the figures are deterministic, so the assertions cannot flake.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.analysis import ALPHA, LOOKS, aa_rates, runs_to_rollback

pytestmark = pytest.mark.slow


def test_a_a_sequential_decisions_stay_under_alpha_while_peeking_a_fixed_test_does_not() -> None:
    rates = aa_rates(np.random.default_rng(20261121), 1000)
    sequential, experiments = rates["sequential"]
    naive, _ = rates["naive"]
    assert experiments == 1000 and LOOKS == 50
    assert sequential / experiments <= ALPHA
    assert naive / experiments > 2 * ALPHA


def test_a_candidate_twenty_percent_worse_is_rolled_back() -> None:
    experiments = 300
    runs, promoted = runs_to_rollback(np.random.default_rng(20261121), experiments)
    assert promoted == 0
    assert len(runs) >= 0.95 * experiments
    assert 1000 <= float(np.median(runs)) <= 8000  # per arm; the benchmark reports ~3,500
