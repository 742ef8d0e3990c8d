"""The CUPED benchmark runs end to end (``--quick``) and prints one JSON object with every
figure the README quotes; only the shape is checked, the figures are the benchmark's to measure
(the assertions on them are in ``test_analysis_cuped_simulation.py``)."""

from __future__ import annotations

import math

import pytest

from tests.bench import run_benchmark

SCENARIOS = ["aa_cuped_one_run", "aa_cuped_repeat_users", "aa_cuped_ramp"]
SHARES = [
    *(f"{name}_false_decision_rate" for name in SCENARIOS),
    *(f"{name}_false_decision_rate_without_cuped" for name in SCENARIOS),
    *(f"{name}_variance_reduction_median" for name in SCENARIOS),
    "power_promoted_share_cuped",
    "power_promoted_share_plain",
    "power_variance_reduction_median",
]


@pytest.mark.slow
def test_cuped_benchmark_prints_one_json_object_with_every_figure() -> None:
    result = run_benchmark("cuped")
    for key in SHARES:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert 0 <= value <= 1, key
    for name in SCENARIOS:
        low, high = result[f"{name}_false_decision_ci95"]
        assert 0 <= low <= result[f"{name}_false_decision_rate"] <= high <= 1, name
    for key in ("power_users_to_promote_median_cuped", "power_users_to_promote_median_plain"):
        assert result[key] > 0, key  # may be inf (never promoted) in a quick run
    assert result["alpha"] == 0.05
    assert math.isfinite(result["power_users_ratio_cuped_to_plain"]) or math.isnan(
        result["power_users_ratio_cuped_to_plain"]
    )
