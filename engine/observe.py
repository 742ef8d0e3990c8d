"""What an embedding application may watch of a run beyond its trace: retries and step content.

The trace (``engine.trace``) records each step's outcome, timing, cost and usage. Two things
it deliberately leaves out, because most runs never need them and keeping them costs memory per
step: each failed attempt that was retried (when, why, how long the backoff), and a step's
resolved parameters and outputs (prompts and generations: content a host records only when it
has been asked to). A host that wants them (the control plane's OpenTelemetry export) sets an
observer with ``Engine.observe``; without one the engine does not call anything.

Observers are called on the event loop, in the middle of a run: they must be quick and must
not raise (an exception would fail the step).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.errors import NodeError

__all__ = ["RunObserver"]


class RunObserver(Protocol):
    def retrying(
        self,
        run_id: str,
        node: str,
        item: int | None,
        attempt: int,
        error: NodeError,
        delay_s: float,
    ) -> None:
        """Attempt ``attempt`` of ``node`` (of its ``item``-th element, in a map) failed with a
        retryable ``error``; the next attempt starts after ``delay_s``."""

    def step_content(
        self, run_id: str, node: str, params: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        """``node`` was executed (not served from the cache) with ``params`` and produced
        ``outputs``, already checked against its kind's types."""
