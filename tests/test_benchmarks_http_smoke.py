"""The HTTP benchmark runs end to end and prints one JSON object with every figure, driven by wrk
on its own core (installed by `.ci/run`) and by the Python fallback, which labels itself.

Only the shape is checked: tests never assert on wall-clock time, so the targets may be either way.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from tests.bench import assert_positive, run_benchmark

PER_CONNECTIONS = [
    "run_rps",
    "run_p50_ms",
    "run_p99_ms",
    "bare_rps",
    "bare_p50_ms",
    "bare_p99_ms",
    "run_p99_vs_p50",
    "generator_cpu",
]
ROUTER = ["assign_ns", "mmh3_ns", "assign_vs_mmh3"]


def bench(*args: str) -> dict[str, Any]:
    result = run_benchmark("http", *args)
    numbers = [f"{k}_c{c}" for c in (16, 64) for k in PER_CONNECTIONS] + ROUTER
    assert_positive(result, numbers)
    assert set(result["targets"]) == {
        "run_vs_bare_c16_at_least_0.33",
        "run_vs_bare_c64_at_least_0.33",
        "run_p99_within_3x_p50_c16",
        "run_p99_within_3x_p50_c64",
        "assign_within_3x_mmh3",
    }
    assert all(isinstance(ok, bool) for ok in result["targets"].values())
    assert result["machine"]["cores"] >= 1
    return result


@pytest.mark.slow
def test_wrk_drives_the_benchmark_from_its_own_core() -> None:
    if shutil.which("wrk") is None or (os.cpu_count() or 1) < 2:
        if os.environ.get("CI"):
            pytest.fail("wrk is missing (.ci/run installs Debian's package) or one core")
        pytest.skip("wrk is not installed here (Debian package `wrk`)")
    result = bench()
    assert result["generator"] == "wrk" and result["machine"]["wrk"] is True
    assert result["machine"]["generator_core"] == (os.cpu_count() or 1) - 1
    for c in ("c16", "c64"):
        ratio = result[f"run_vs_bare_{c}"]
        # A ratio only from rounds where wrk had room on its core; else none at all.
        if result[f"generator_cpu_{c}"] > 0.9:
            assert ratio is None
        else:
            assert isinstance(ratio, float) and ratio > 0


@pytest.mark.slow
def test_the_python_fallback_says_its_ratio_is_an_upper_bound() -> None:
    result = bench("--generator", "python")
    assert result["generator"] == "python"
    assert any("UPPER BOUND" in note for note in result["notes"])
    assert not result["targets"]["run_vs_bare_c16_at_least_0.33"]
    assert not result["targets"]["run_vs_bare_c64_at_least_0.33"]
