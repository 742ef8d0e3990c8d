"""OpenTelemetry export over OTLP/HTTP from real processes: ``rollgraph serve`` (and ``rollgraph
worker`` for a queued run) with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a receiver started
here, a small HTTP server that decodes each ``POST /v1/traces`` with the OTLP protobuf types."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.fixtures import REDIS_URL, bearer

pytestmark = pytest.mark.slow

Serve = Callable[..., AbstractContextManager[str]]

WORKFLOW = """
name: exported
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
  shout:
    uses: template
    with: {text: "{t}!", values: {t: "${write.text}"}}
outputs:
  text: "${shout.text}"
"""
PROMPT = "a lighthouse in a storm"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attrs(pairs: Any) -> dict[str, Any]:
    found: list[KeyValue] = list(pairs)
    return {kv.key: _value(kv.value) for kv in found}


class Receiver:
    """An OTLP/HTTP trace receiver on a free loopback port; ``spans`` are what it decoded."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            service = _attrs(resource_spans.resource.attributes).get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attrs": _attrs(span.attributes),
                            "events": [event.name for event in span.events],
                            "service": service,
                        }
                    )
        with self.lock:
            self.spans.extend(found)

    def run_span(self, run_id: str) -> dict[str, Any] | None:
        with self.lock:
            for span in self.spans:
                if span["attrs"].get("rollgraph.run_id") == run_id and span["name"].startswith(
                    "invoke_workflow"
                ):
                    return span
        return None

    def span(self, span_id: str) -> dict[str, Any] | None:
        with self.lock:
            return next((s for s in self.spans if s["span_id"] == span_id), None)

    def children(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["parent_span_id"] == span["span_id"]]


@contextmanager
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        found.server.shutdown()
        found.server.server_close()


def wait_for(predicate: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def seed(client: httpx.Client) -> None:
    created = client.post("/v1/workflows", json={"source": WORKFLOW, "version": "v1"})
    assert created.status_code == 201, created.text
    labelled = client.put("/v1/workflows/exported/labels/prod", json={"version": "v1"})
    assert labelled.status_code == 200, labelled.text


def base_env(tmp_path: Path, admin_key: str, otlp: str) -> dict[str, str]:
    return {
        "ROLLGRAPH_ENV": "test",
        "ROLLGRAPH_ADMIN_KEY": admin_key,
        "ROLLGRAPH_DATABASE_URL": f"sqlite:///{tmp_path / 'rg.db'}",
        "ROLLGRAPH_EXPERIMENT_EVAL_S": "3600",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
    }


def test_a_served_run_is_exported_over_otlp_http_and_flushed_at_shutdown(
    tmp_path: Path, admin_key: str, serve: Serve
) -> None:
    with receiver() as otlp:
        env = base_env(tmp_path, admin_key, otlp.url)
        # A minute between batches: what arrives was sent by the shutdown's flush.
        env["OTEL_BSP_SCHEDULE_DELAY"] = "60000"
        env["ROLLGRAPH_OTEL_CAPTURE_CONTENT"] = "true"
        with serve(env) as url, httpx.Client(base_url=url, headers=bearer(admin_key)) as client:
            seed(client)
            answer = client.post(
                "/v1/run",
                json={"workflow": "exported", "input": {"prompt": PROMPT}, "user_id": "u1"},
                headers={"traceparent": TRACEPARENT},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
            run_id = answer.json()["run_id"]
            assert otlp.run_span(run_id) is None  # still in the batch
        root = wait_for(lambda: otlp.run_span(run_id), timeout_s=10, what="the run's span")
    assert root["name"] == "invoke_workflow exported"
    assert root["service"] == "rollgraph"
    # The run is the child of its request's SERVER span, itself the caller's span's child.
    request = otlp.span(root["parent_span_id"])
    assert request is not None and request["name"] == "POST /v1/run"
    assert (request["trace_id"], request["parent_span_id"]) == (TRACE_ID, PARENT_SPAN_ID)
    assert request["attrs"]["http.response.status_code"] == 200
    assert root["trace_id"] == TRACE_ID
    assert root["attrs"]["gen_ai.workflow.name"] == "exported"
    assert root["attrs"]["rollgraph.label"] == "prod"
    assert PROMPT in root["attrs"]["rollgraph.input"]  # ROLLGRAPH_OTEL_CAPTURE_CONTENT=true
    steps = {s["attrs"]["rollgraph.node"]: s for s in otlp.children(root)}
    assert set(steps) == {"write", "shout"}
    assert steps["write"]["attrs"]["gen_ai.request.model"] == "writer-small"
    assert steps["write"]["attrs"]["gen_ai.usage.input_tokens"] > 0
    assert steps["shout"]["name"] == "template shout"
    assert root["start"] <= steps["write"]["start"] <= steps["shout"]["end"] <= root["end"]


def test_a_queued_run_continues_the_submitters_trace_on_the_worker(
    tmp_path: Path,
    admin_key: str,
    redis_prefix: str,
    serve: Serve,
    worker: Callable[..., AbstractContextManager[Any]],
) -> None:
    with receiver() as otlp:
        env = base_env(tmp_path, admin_key, otlp.url)
        env.update({"REDIS_URL": REDIS_URL, "ROLLGRAPH_REDIS_PREFIX": redis_prefix})
        env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
        worker_env = {**env, "OTEL_SERVICE_NAME": "rollgraph-worker"}
        with (
            serve(env) as url,
            worker(worker_env, name="w1"),
            httpx.Client(base_url=url, headers=bearer(admin_key), timeout=60) as client,
        ):
            seed(client)
            accepted = client.post(
                "/v1/run",
                json={"workflow": "exported", "input": {"prompt": PROMPT}, "mode": "async"},
                headers={"traceparent": TRACEPARENT},
            )
            assert accepted.status_code == 202, accepted.text
            run_id = accepted.json()["run_id"]
            assert accepted.json()["status"] == "queued"
            root = wait_for(lambda: otlp.run_span(run_id), timeout_s=60, what="the run's span")
            request = wait_for(
                lambda: otlp.span(root["parent_span_id"]), timeout_s=10, what="the request's span"
            )
    assert root["service"] == "rollgraph-worker"  # run by the worker, in the caller's trace
    assert root["trace_id"] == TRACE_ID
    # Its parent: the submitting request's SERVER span, on the server, the caller's child.
    assert (request["service"], request["name"]) == ("rollgraph", "POST /v1/run")
    assert (request["trace_id"], request["parent_span_id"]) == (TRACE_ID, PARENT_SPAN_ID)
    assert root["attrs"]["rollgraph.status"] == "succeeded"
    assert {s["attrs"]["rollgraph.node"] for s in otlp.children(root)} == {"write", "shout"}
    # Content is off without ROLLGRAPH_OTEL_CAPTURE_CONTENT.
    assert "rollgraph.input" not in root["attrs"]
