"""The hot-rows benchmark runs end to end (two replicas on PostgreSQL, wrk) and prints one JSON
object with every figure; it checks the store itself (every experiment run counted once).

Only the shape is checked: tests never assert on wall-clock time."""

from __future__ import annotations

import pytest

from tests.bench import assert_positive, run_benchmark

NUMBERS = [
    "plain_rps",
    "experiment_rps",
    "plain_p50_ms",
    "plain_p99_ms",
    "experiment_p50_ms",
    "experiment_p99_ms",
    "generator_cpu",
]


@pytest.mark.slow
def test_experiment_rps_benchmark_prints_one_json_object_with_every_figure() -> None:
    result = run_benchmark("experiment_rps")
    assert_positive(result, NUMBERS)
    ratio = result["experiment_vs_plain_rps"]
    assert ratio is None or (isinstance(ratio, float) and ratio > 0)
    assert result["experiment_runs"] > 0  # and the benchmark found each counted once
    assert set(result["targets"]) == {"experiment_vs_plain_rps_at_least_0.9"}
