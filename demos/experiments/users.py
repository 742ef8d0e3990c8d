"""The simulated users: each runs the workflow once through the experiment's label, as any user
of the public client would, and reports whether they converted. Their prompts and decisions are
the demo's own seeded draws (``--seed``); they come a batch (:data:`BATCH`) at a time, on a
client per thread (:class:`UserClients`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import httpx

from control_plane.client import ApiError, SyncClient
from demos.experiments.scenarios import Scenario

__all__ = ["BATCH", "PROMPTS", "UserClients", "visit", "visit_batch"]

BATCH: Final = 100  # users per batch: one evaluation, one line
PROMPTS: Final = (
    "a red sneaker on a rainy street",
    "a steel water bottle on a mountain trail",
    "a linen shirt in a sunlit loft",
    "wireless earbuds on a café table",
    "a ceramic mug of morning coffee",
    "a leather backpack at a train station",
    "a desk lamp in a quiet study",
    "a yoga mat on a beach at dawn",
)


class UserClients:
    """A client per thread of simulated users: threads sharing one httpx client queue on its
    connection pool's lock, which costs a good part of the demo's throughput."""

    def __init__(self, url: str, key: str) -> None:
        self._url, self._key = url, key
        self._local = threading.local()
        self._all: list[SyncClient] = []
        self._lock = threading.Lock()

    def get(self) -> SyncClient:
        client: SyncClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = SyncClient(self._url, self._key)
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._all:
                client.close()
            self._all.clear()


def visit_batch(
    pool: ThreadPoolExecutor,
    users_client: Callable[[], SyncClient],
    scenario: Scenario,
    body: dict[str, Any],
    number: int,
    first: int,
    seed: int,
) -> None:
    """The :data:`BATCH` users of scenario ``number`` from the ``first``-th on, as many at once
    as ``pool`` has workers; ``users_client`` gives the client of the calling thread."""
    batch = [f"u{number}-{i:05d}" for i in range(first, first + BATCH)]
    # list() re-raises the first error of a visit (the server went away, a 401...).
    list(pool.map(lambda u: visit(users_client(), scenario, body, u, seed), batch))


def visit(
    client: SyncClient, scenario: Scenario, body: dict[str, Any], user: str, seed: int
) -> None:
    """One user: a run through the label, then whether they converted. A "no" is reported too:
    the conversion rate's denominator is every user, not only those who converted."""
    # Seeded by the user, not by which thread gets there first: a user always sends the same
    # prompt and decides the same way on the same version.
    rng = random.Random(f"{seed}:{user}")
    run = client.run(
        body["workflow"], {"prompt": rng.choice(PROMPTS)}, user_id=user, label=body["label"]
    )
    role = "candidate" if run.version == body["candidate"] else "baseline"
    converted = run.status == "succeeded" and rng.random() < scenario.conversion[role]
    _report(client, run.run_id, converted)


def _report(client: SyncClient, run_id: str, converted: bool, attempts: int = 3) -> None:
    """Post the outcome, again after a server error: the same value twice is a no-op, so a
    retry is safe (a run is not retried: it would be another run). A busy SQLite store can
    answer 500 ("database is locked") when many users report at once."""
    for attempt in range(1, attempts + 1):
        try:
            client.outcome(run_id, {"converted": converted})
            return
        except ApiError as exc:
            if exc.status < 500 or attempt == attempts:
                raise
        except httpx.TransportError:
            if attempt == attempts:
                raise
        time.sleep(0.2 * attempt)
