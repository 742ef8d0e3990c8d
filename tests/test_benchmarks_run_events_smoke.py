"""The run-events latency benchmark (``python -m benchmarks.run_events --json``) runs end to end
(three topologies, real processes, on SQLite, PostgreSQL and Redis) and prints one JSON object
with its figures.

Only the shape is checked: the delays are wall-clock figures for STATUS, never asserted on.
"""

from __future__ import annotations

import pytest

from tests.bench import assert_positive, run_benchmark


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_run_events_benchmark_prints_every_figure(database_url: str, redis_prefix: str) -> None:
    # The fixtures only skip (or fail under CI=true) without PostgreSQL and Redis: the benchmark
    # makes its own schemas and key prefix.
    result = run_benchmark("run_events", strict=False)
    assert (result["steps"], result["runs"]) == (3, 1)
    for topology in ("same_process", "replica_polling", "replica_redis"):
        for profile in ("dense", "sparse"):
            figures = result[topology][profile]
            assert figures["samples"] >= 1, (topology, profile)
            assert_positive(figures, ["median_ms", "p95_ms", "max_ms"])
