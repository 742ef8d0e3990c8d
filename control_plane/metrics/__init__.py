"""Prometheus metrics at ``GET /metrics``: what the control plane did, counted once, where it
was committed.

* ``registry``: the metric objects and the calls that record into them (``Metrics``), in one
  process or across worker processes (prometheus-client's multiprocess mode);
* ``http``: the ASGI middleware that counts requests by route template;
* ``collector``: gauges read from the store at scrape time (rollout shares, p-values);
* ``routes``: the ``/metrics`` endpoint, classic text or OpenMetrics as the scraper asks.
"""

from control_plane.metrics.instruments import (
    DURATION_BUCKETS,
    Metrics,
    after_commit,
    assignment_reason,
)

__all__ = ["DURATION_BUCKETS", "Metrics", "after_commit", "assignment_reason"]
