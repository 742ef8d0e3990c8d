"""The scale-out benchmark (``make bench-scale``, ``python -m benchmarks.scale --json``) runs end
to end against the machine's PostgreSQL and Redis and prints one JSON object with every figure.

Only the shape and the bookkeeping are checked: throughput and latency are wall-clock figures
for the README, never asserted on."""

from __future__ import annotations

import pytest

from tests.bench import run_benchmark

FIGURES = ("async_rps_1_worker", "async_rps_2_workers", "direct_ms", "queued_ms")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_scale_benchmark_prints_one_json_object_with_every_figure(
    database_url: str, redis_prefix: str
) -> None:
    # The fixtures only skip (or fail under CI=true) without PostgreSQL and Redis: the benchmark
    # makes its own schema and key prefix.
    result = run_benchmark("scale", quick=False, strict=False, timeout=600)
    assert (result["runs"], result["nodes"]) == (400, 3)
    # One worker gets enough slots to be bound by its CPU, and every measured interval says who
    # used the CPU: the server, each worker, the benchmark itself, the machine and the rest.
    assert result["worker_slots"] >= 16
    assert set(result["cpu_1_worker"]) >= {"server", "worker_w1", "benchmark", "machine", "rest"}
    assert set(result["cpu_2_workers"]) >= {"worker_w1", "worker_w2", "benchmark", "machine"}
    for phase in ("cpu_1_worker", "cpu_2_workers"):
        shares = result[phase]
        assert shares["worker_w1"] > 0 and shares["server"] > 0, shares
        assert len(shares["loadavg_before"]) == len(shares["loadavg_after"]) == 3
    for key in FIGURES:
        assert result[key] > 0, (key, result)
    assert result["scale_ratio"] == pytest.approx(
        result["async_rps_2_workers"] / result["async_rps_1_worker"], abs=0.02
    )
    assert result["queue_extra_ms"] == pytest.approx(
        result["queued_ms"] - result["direct_ms"], abs=0.11
    )
