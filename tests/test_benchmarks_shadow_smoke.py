"""The shadow benchmark (``python -m benchmarks.shadow --json``) runs tiny and prints one JSON
object with the served latency ratio and its two medians; the figures themselves are the
benchmark's to measure, never asserted on here."""

from __future__ import annotations

from tests.bench import assert_positive, run_benchmark


def test_shadow_benchmark_prints_the_served_latency_ratio() -> None:
    result = run_benchmark("shadow", quick=True, timeout=120)
    assert_positive(
        result, ("shadow_served_latency_ratio", "served_p50_ms_off", "served_p50_ms_on")
    )
    # Every mirrored request of the "on" blocks ran: nothing dropped at this size.
    assert result["shadow_runs"] == result["requests_per_condition"] > 0
    assert result["machine"]["cores"] >= 1
