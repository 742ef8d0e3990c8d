"""Many concurrent requests that read the store through the request's session, on a real server
with a small connection pool: every one is answered, none waits for a connection held by a
request that is itself waiting for a thread.

The deadlock this guards against: a handler's session used to be committed and closed in a
thread of the same 40-thread pool that runs the handlers. With more requests in flight than
threads, every thread could be inside a handler waiting for a connection while every
connection was held by a finished handler waiting for a thread to close its session, until the
pool timeout turned each into an error.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

pytestmark = pytest.mark.slow

CONCURRENT = 120  # three times the server's 40 threads
POOL = 2  # connections: far fewer than the requests in flight


async def _hammer(url: str, key: str) -> Counter[int]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as c:
        gate = asyncio.Event()

        async def one(i: int) -> int:
            await gate.wait()  # all at once, not as they are created
            path = "/v1/runs" if i % 2 else "/v1/workflows"
            return (await c.get(path)).status_code

        tasks = [asyncio.create_task(one(i)) for i in range(CONCURRENT)]
        await asyncio.sleep(0)
        gate.set()
        return Counter(await asyncio.gather(*tasks))


def test_more_requests_than_threads_and_connections_are_all_answered(
    database_url: str, admin_key: str, serve: Callable[..., AbstractContextManager[str]]
) -> None:
    env = {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": database_url,
        "ROLLGRAPH_DB_POOL_SIZE": str(POOL),
        # Admission control would answer most of them 503 `store_busy` at once (see
        # test_admission.py): here every request is admitted, to show none deadlocks.
        "ROLLGRAPH_DB_MAX_WAITING": str(CONCURRENT),
        # Long enough that only a deadlock, not a busy moment, makes a request wait it out.
        "ROLLGRAPH_DB_POOL_TIMEOUT_S": "20",
    }
    with serve(env) as url:
        for _ in range(3):
            statuses = asyncio.run(_hammer(url, admin_key))
            assert statuses == Counter({200: CONCURRENT})
