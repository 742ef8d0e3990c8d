"""Issue 12's verification in the tests: the simulations of ``benchmarks.analysis`` (through the
evaluator's path, ``benchmarks.scenarios``), fewer experiments than the benchmark's 1,000:

* every A/A scenario (repeat users, a ramp while the baseline drifts, a small share with rare
  events, margin-0 guardrails, a fixed test looked at every time) decides falsely in at most
  alpha of its experiments, and repeat users raise no more than 1 % false sample-ratio halts;
* power: a candidate whose conversion is 20 % worse (10 % → 8 %) is rolled back, never
  promoted, in nearly every experiment within the horizon.

Fixed seeds: the figures are deterministic, so the assertions cannot flake.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import scenarios
from benchmarks.analysis import ALPHA, POWER, SCENARIOS
from benchmarks.scenarios import Scenario

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda sc: sc.name)
def test_a_a_experiments_decide_falsely_at_most_alpha(scenario: Scenario) -> None:
    experiments = 300
    outcomes = scenarios.run(np.random.default_rng(20261203), scenario, experiments)
    decided = sum(o.look is not None for o in outcomes)
    assert decided / experiments <= ALPHA
    if scenario.name == "aa_repeat_users":
        assert sum(o.srm_flagged for o in outcomes) / experiments <= 0.01


def test_a_candidate_twenty_percent_worse_is_rolled_back() -> None:
    experiments = 200
    outcomes = scenarios.run(np.random.default_rng(20261121), POWER, experiments)
    assert not any(o.action == "promote" for o in outcomes)
    rolled = [200 * (o.look + 1) for o in outcomes if o.action == "rollback" and o.look is not None]
    assert len(rolled) >= 0.95 * experiments
    assert 1000 <= float(np.median(rolled)) <= 1.3 * 3300  # per arm; the benchmark: 3,400
