"""The users-as-units benchmark runs end to end and prints one JSON object with every figure.

Only the shape is checked (and that rates are shares with their intervals): the rates of a
--quick run are too noisy to assert on; the full run's figures are in the README.
"""

from __future__ import annotations

import pytest

from tests.bench import run_benchmark

RATES = [
    f"aa_repeat_users_{name}_rate_by_{unit}"
    for name in ("decided", "srm_halt")
    for unit in ("users", "runs")
]


@pytest.mark.slow
def test_units_benchmark_prints_one_json_object_with_every_figure() -> None:
    result = run_benchmark("units")
    for key in RATES:
        assert 0 <= result[key] <= 1, key
        low, high = result[f"{key}_ci95"]
        assert 0 <= low <= result[key] <= high <= 1, key
    assert set(result["targets"]) == {
        "decisions_by_users_within_alpha",
        "srm_halts_by_users_within_1pct",
    }
    assert result["machine"]["cores"] >= 1
