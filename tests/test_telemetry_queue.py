"""A queued run continues its caller's OpenTelemetry trace even when the outbox sweep is what
queues it (the replica that accepted it died before queueing): the submitting request's
``traceparent`` is stored on the run. In memory, as ``test_telemetry``, with the real Redis,
on SQLite and PostgreSQL.

The crash is reproduced by what it leaves: the run stored ``queued`` with no message on the
stream and no outbox mark.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from control_plane.app import create_app
from control_plane.kit.time import utcnow
from control_plane.runs.execution import Runs
from control_plane.settings import Settings
from control_plane.store.db import session_scope
from control_plane.store.tables import RunRow
from control_plane.telemetry.tracing import OtelTracing
from tests.fixtures import GREET, REDIS_URL, app_state, bearer, seed_workflow
from tests.test_queue_outbox import _consume, _wait_marked
from tests.test_telemetry import PARENT_SPAN_ID, TRACE_ID, TRACEPARENT, attrs_of, sim_engine


@contextmanager
def queued_app(
    database_url: str, redis_prefix: str
) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    key = "rgk" + secrets.token_urlsafe(32)
    settings = Settings(
        env="test",
        database_url=database_url,
        admin_key=key,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        queue_visibility_timeout_s=1.0,  # the sweep's grace before it queues a stranded run
    )
    app = create_app(settings, run_engine=sim_engine, tracing=OtelTracing(provider))
    with TestClient(app, raise_server_exceptions=False, headers=bearer(key)) as client:
        seed_workflow(client, "greet", {"v1": GREET}, {"prod": "v1"})
        yield client, exporter
    provider.shutdown()


def test_a_run_the_sweep_queues_again_continues_the_submitters_trace(
    database_url: str, redis_prefix: str
) -> None:
    with queued_app(database_url, redis_prefix) as (client, exporter):
        runs: Runs = app_state(client).runs
        queued = runs.queued
        assert queued is not None
        accepted = client.post(
            "/v1/run",
            json={"workflow": "greet", "input": {"prompt": "hi"}, "mode": "async"},
            headers={"traceparent": TRACEPARENT},
        )
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        assert asyncio.run(_wait_marked(client, run_id)) is not None  # then undone below
        # The replica "died" before its message reached the queue: no message, no mark.
        client.portal.call(lambda: queued.queue.client.delete(queued.queue.stream))  # type: ignore[union-attr]
        client.portal.call(queued.queue.ensure_group)  # type: ignore[union-attr]
        with session_scope(app_state(client).session_factory) as session:
            row = session.get(RunRow, run_id)
            assert row is not None
            assert row.traceparent is not None and TRACE_ID in row.traceparent
            row.enqueued_at = None
            row.created_at = utcnow() - timedelta(seconds=30)
        client.portal.call(runs.sweep)  # type: ignore[union-attr]
        assert client.portal.call(_consume, runs, 1) == [run_id]  # type: ignore[union-attr]
        assert client.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if attrs_of(s).get("rollgraph.run_id") == run_id and s.parent]
    assert root.name == "invoke_workflow greet"
    assert f"{root.context.trace_id:032x}" == TRACE_ID
    # The run's parent is the submitting request's span, in the caller's trace.
    by_id = {s.context.span_id: s for s in spans}
    assert root.parent is not None
    parent = by_id.get(root.parent.span_id)
    caller = parent.parent if parent is not None else root.parent
    assert caller is not None and f"{caller.span_id:016x}" == PARENT_SPAN_ID
