"""The analysis benchmark runs end to end and prints one JSON object with every figure.

Only the shape is checked (and that the rates are shares): tests never assert on wall-clock time,
so the targets may be either way.
"""

from __future__ import annotations

import math

import pytest

from tests.bench import run_benchmark

POSITIVE = [
    "alpha",
    "power_runs_to_rollback_median",
    "power_runs_to_rollback_p25",
    "power_runs_to_rollback_p75",
    "power_fixed_horizon_runs_per_arm",
    "analysis_ms_10m_runs",
    "analysis_ms_1k_runs",
    "aa_experiments",
    "power_experiments",
]
SCENARIOS = [
    "aa_repeat_users",
    "aa_ramp_drift",
    "aa_small_share_rare",
    "aa_guardrails_margin0",
    "aa_fixed_peeked",
]
RATES = [f"{name}_false_decision_rate" for name in SCENARIOS] + ["srm_false_halt_rate_repeat_users"]
SHARES = [*RATES, "power_never_rolled_back_share", "power_promoted_worse_share"]
TARGETS = {
    *(f"{name}_within_alpha" for name in SCENARIOS),
    "srm_false_halts_within_1pct",
    "power_within_1_3x_of_3300",
    "power_never_promotes_worse",
    "analysis_under_10ms",
    "analysis_cost_flat_in_runs",
}


@pytest.mark.slow
def test_analysis_benchmark_prints_one_json_object_with_every_figure() -> None:
    result = run_benchmark("analysis", timeout=120)
    for key in POSITIVE + SHARES:
        value = result[key]
        assert isinstance(value, int | float), key
        assert not isinstance(value, bool), key
        assert math.isfinite(value), key
        assert value > 0 if key in POSITIVE else 0 <= value <= 1, key
    for key in RATES:
        low, high = result[f"{key}_ci95"]
        assert 0 <= low <= result[key] <= high <= 1, key
    assert result["alpha"] == 0.05
    assert set(result["targets"]) == TARGETS
    assert all(isinstance(ok, bool) for ok in result["targets"].values())
    assert set(result["machine"]) == {"cores", "python", "numpy", "scipy"}
    assert result["notes"]
