"""Each HTTP request is a SERVER span (HTTP semantic conventions) in the caller's trace, recorded
in memory on an in-process app; with OpenTelemetry off the app has no such middleware (that
case: ``test_telemetry.test_without_otel_variables_nothing_is_traced``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from tests.test_telemetry import PARENT_SPAN_ID, TRACE_ID, TRACEPARENT, attrs_of, run, traced_app


def server_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is SpanKind.SERVER]


def test_a_request_is_a_server_span_named_by_its_route_under_the_callers_span(
    tmp_path: Path,
) -> None:
    with traced_app(tmp_path) as (client, exporter):
        answer = run(client)
        exporter.clear()
        read = client.get(f"/v1/runs/{answer['run_id']}", headers={"traceparent": TRACEPARENT})
        assert read.status_code == 200
    (span,) = server_spans(exporter.get_finished_spans())
    # The template, never the raw path: a run id in a span name would be one name per run.
    assert span.name == "GET /v1/runs/{run_id}"
    attrs = attrs_of(span)
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.route"] == "/v1/runs/{run_id}"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == f"/v1/runs/{answer['run_id']}"
    assert attrs["url.scheme"] == "http"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_SPAN_ID
    assert span.status.status_code is StatusCode.UNSET


def test_without_a_traceparent_a_request_starts_a_trace_of_its_own(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        exporter.clear()
        assert client.get("/v1/workflows").status_code == 200
    (span,) = server_spans(exporter.get_finished_spans())
    assert span.name == "GET /v1/workflows" and span.parent is None
    assert f"{span.context.trace_id:032x}" != TRACE_ID


def test_client_errors_leave_the_status_unset_and_unknown_paths_have_no_route(
    tmp_path: Path,
) -> None:
    with traced_app(tmp_path) as (client, exporter):
        exporter.clear()
        assert client.get("/v1/runs/no-such-run").status_code == 404
        assert client.get("/no/such/path").status_code == 404
        assert client.request("BREW", "/v1/workflows").status_code == 405
    found, unknown, brew = server_spans(exporter.get_finished_spans())
    assert found.name == "GET /v1/runs/{run_id}"
    assert attrs_of(found)["http.response.status_code"] == 404
    assert found.status.status_code is StatusCode.UNSET  # the client's error, not the server's
    assert unknown.name == "GET" and "http.route" not in attrs_of(unknown)
    # A method the conventions do not know is `_OTHER`, with the original kept aside.
    assert brew.name == "_OTHER /v1/workflows"
    assert attrs_of(brew)["http.request.method"] == "_OTHER"
    assert attrs_of(brew)["http.request.method_original"] == "BREW"


def test_a_server_error_is_an_error_span(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        app = client.app
        assert isinstance(app, FastAPI)

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("boom")

        exporter.clear()
        assert client.get("/boom").status_code == 500
    (span,) = server_spans(exporter.get_finished_spans())
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert attrs_of(span)["http.response.status_code"] == 500
    assert attrs_of(span)["error.type"] in ("500", "RuntimeError")
