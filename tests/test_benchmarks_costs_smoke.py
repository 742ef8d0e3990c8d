"""The per-run cost benchmark (``python -m benchmarks.costs --json``, the inputs of
docs/SCALING.md) runs end to end against the machine's PostgreSQL and a private Redis and prints
one JSON object with every figure.

Only the shape and the bookkeeping are checked: CPU and rates are machine figures, never
asserted on; counts that the product makes per run must be there and positive."""

from __future__ import annotations

import shutil

import pytest

from tests.bench import run_benchmark

PER_RUN = ("server_cpu_ms", "db_inserts", "db_rows", "db_bytes", "runs_per_s")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_costs_benchmark_prints_the_per_run_costs_of_sync_and_async_runs(
    database_url: str,
) -> None:
    # The fixture only skips (or fails under CI=true) without PostgreSQL: the benchmark makes
    # its own schema and its own Redis.
    result = run_benchmark("costs", quick=False, strict=False, timeout=600)
    assert result["runs"] > 0
    for kind in ("sync", "async"):
        for key in PER_RUN:
            assert result[kind][key] > 0, (kind, key, result[kind])
        by_command = result[kind]["redis_by_command"]
        assert result[kind]["redis_calls"] == pytest.approx(sum(by_command.values()), abs=0.1)
    # An async run goes through the queue: Redis is called for it, and a worker runs it.
    assert result["async"]["redis_calls"] > 0
    assert result["async"]["worker_cpu_ms"] > 0
