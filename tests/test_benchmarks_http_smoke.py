"""The HTTP benchmark runs end to end and prints one JSON object with every figure.

Only the shape is checked: tests never assert on wall-clock time, so the targets may be either way.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

NUMBERS = [
    "run_rps",
    "run_p50_ms",
    "run_p99_ms",
    "bare_rps",
    "bare_p50_ms",
    "bare_p99_ms",
    "run_vs_bare",
    "assign_ns",
    "mmh3_ns",
    "assign_vs_mmh3",
]


@pytest.mark.slow
def test_http_benchmark_prints_one_json_object_with_every_figure() -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks.http", "--json", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # the whole of stdout: exactly one JSON value
    assert isinstance(result, dict)
    for key in NUMBERS:
        value = result[key]
        assert isinstance(value, int | float), key
        assert not isinstance(value, bool), key
        assert math.isfinite(value), key
        assert value > 0, key
    assert set(result["targets"]) == {"run_at_least_half_of_bare", "assign_within_3x_mmh3"}
    assert all(isinstance(ok, bool) for ok in result["targets"].values())
    assert result["machine"]["cores"] >= 1
    assert result["notes"]
