"""The soak benchmark (``benchmarks/soak.py``) as a slow test: two replicas and two workers on
the machine's PostgreSQL and Redis under a minute of mixed traffic from ``wrk``.

CI runs it with 100 clients rather than the benchmark's 200: the two replicas, two workers,
PostgreSQL, Redis and wrk share the CI machine's two cores with the rest of the suite, and the
checks below are about correctness under concurrency, not about what two cores can serve.
"""

from __future__ import annotations

import os
import shutil

import pytest

from benchmarks.soak import measure

pytestmark = pytest.mark.slow

CLIENTS = 100
DURATION_S = 60


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_minute_of_mixed_traffic_has_no_5xx_and_loses_nothing(
    database_url: str, redis_prefix: str
) -> None:
    if shutil.which("wrk") is None:
        reason = "wrk is not installed (Debian package `wrk`; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    result = measure(duration_s=DURATION_S, clients=CLIENTS, database_url=database_url)
    summary = {k: result[k] for k in ("five_xx_by_code", "five_xx_samples", "counters_vs_store")}
    # Every class was exercised, and answered.
    assert all(c["requests"] > 0 for c in result["classes"].values()), result["classes"]
    assert result["answered_runs"].get("sync", 0) > 0, summary
    assert result["answered_runs"].get("async", 0) > 0, summary
    assert result["five_xx"] == 0, summary
    assert result["socket_errors"] == 0, result["classes"]
    assert result["answered_but_missing"] == 0
    assert result["accepted_but_unfinished"] == 0
    assert result["stuck"] == 0
    assert result["targets"]["counters_match_store"], summary
