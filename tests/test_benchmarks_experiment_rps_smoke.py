"""The hot-rows benchmark runs end to end (two replicas on PostgreSQL, wrk) and prints one JSON
object with every figure; it checks the store itself (every experiment run counted once).

Only the shape is checked: tests never assert on wall-clock time."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks.experiment_rps", "--json", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in NUMBERS:
        value = result[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    ratio = result["experiment_vs_plain_rps"]
    assert ratio is None or (isinstance(ratio, float) and ratio > 0)
    assert result["experiment_runs"] > 0  # and the benchmark found each counted once
    assert set(result["targets"]) == {"experiment_vs_plain_rps_at_least_0.9"}
