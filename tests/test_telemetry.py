"""OpenTelemetry spans of runs, recorded in memory through ``POST /v1/run`` on an in-process app:
the run span is the child of the caller's ``traceparent``, step spans are its children with the
GenAI attributes, content only when asked for, retries as events, failures typed, cache hits
marked, the trace id in the stored trace and in the duration's exemplar; and with export off,
no tracing path at all."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import engine
from control_plane.app import create_app
from control_plane.settings import Settings
from control_plane.telemetry import export_requested, open_telemetry
from control_plane.telemetry.config import exporters_requested
from control_plane.telemetry.middleware import TraceContext
from control_plane.telemetry.tracing import OtelTracing
from engine.providers import OpenAIProvider
from engine.providers.sim import SIM_MODELS, SimModel, SimProvider
from tests.fixtures import app_state, bearer, seed_workflow

TRACED = """
name: traced
version: v1
inputs:
  prompt: text
nodes:
  write:
    uses: prompt.enhance
    with: {model: sim/writer-small, prompt: "${inputs.prompt}"}
    cache: true
  polish:
    uses: llm.generate
    with: {model: sim/writer-small, prompt: "Polish: ${write.text}", system: "Be brief."}
outputs:
  text: "${polish.text}"
"""
# The same workflow whose second step's model always fails (retryable), retried once.
BROKEN = TRACED.replace(
    "uses: llm.generate\n    with: {model: sim/writer-small",
    "uses: llm.generate\n    retry: {max_attempts: 2, initial_s: 0.01}\n"
    "    with: {model: sim/broken",
)
PROMPT = "a red sneaker on a wet street"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


def sim_engine() -> engine.Engine:
    models = {**SIM_MODELS, "broken": SimModel("text", 0.1, failure_rate=1.0)}
    return engine.Engine(providers=[SimProvider(time_scale=0, models=models), OpenAIProvider()])


@pytest.fixture(autouse=True)
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests decide about export; the machine's OTEL_* variables do not."""
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def traced_app(
    tmp_path: Path, *, capture_content: bool = False
) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OtelTracing(provider, capture_content=capture_content)
    key = "rgk" + secrets.token_urlsafe(32)
    settings = Settings(env="test", database_url=f"sqlite:///{tmp_path / 'rg.db'}", admin_key=key)
    app = create_app(settings, run_engine=sim_engine, tracing=tracing)
    with TestClient(app, raise_server_exceptions=False, headers=bearer(key)) as client:
        seed_workflow(client, "traced", {"v1": TRACED, "v2": BROKEN}, {"prod": "v1"})
        yield client, exporter
    provider.shutdown()


def run(client: TestClient, *, version: str | None = None, **body: Any) -> dict[str, Any]:
    request = {"workflow": "traced", "input": {"prompt": PROMPT}, "user_id": "u1", **body}
    if version is not None:
        request["version"] = version
    response = client.post("/v1/run", json=request, headers={"traceparent": TRACEPARENT})
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


def run_span(spans: tuple[ReadableSpan, ...], run_id: str) -> ReadableSpan:
    (found,) = [
        s
        for s in spans
        if s.name == "invoke_workflow traced" and attrs_of(s).get("rollgraph.run_id") == run_id
    ]
    return found


def request_span(spans: tuple[ReadableSpan, ...], run: ReadableSpan) -> ReadableSpan:
    """The SERVER span ``run`` is the child of, checked to be the caller's span's child."""
    assert run.parent is not None
    (found,) = [s for s in spans if s.context.span_id == run.parent.span_id]
    assert found.kind is SpanKind.SERVER
    assert found.parent is not None and found.parent.is_remote
    assert f"{found.parent.span_id:016x}" == PARENT_SPAN_ID
    return found


def steps_of(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> dict[str, ReadableSpan]:
    return {
        str(attrs_of(s)["rollgraph.node"]): s
        for s in spans
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    }


def attrs_of(span: ReadableSpan | Event) -> dict[str, Any]:
    return dict(span.attributes or {})


def all_values(span: ReadableSpan) -> str:
    return " ".join(str(v) for v in attrs_of(span).values())


def test_a_run_is_a_child_of_the_callers_span_with_its_steps_nested(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        answer = run(client)
        stored = client.get(f"/v1/runs/{answer['run_id']}").json()
        exposition = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    spans = exporter.get_finished_spans()
    root = run_span(spans, answer["run_id"])
    assert root.parent is not None and not root.parent.is_remote
    assert request_span(spans, root).name == "POST /v1/run"  # the run is the request's child
    assert f"{root.context.trace_id:032x}" == TRACE_ID
    attrs = attrs_of(root)
    assert attrs["gen_ai.operation.name"] == "invoke_workflow"
    assert attrs["gen_ai.workflow.name"] == "traced"
    assert attrs["rollgraph.version"] == "v1"
    assert attrs["rollgraph.label"] == "prod"
    assert attrs["rollgraph.arm"] == "baseline"
    assert attrs["rollgraph.status"] == "succeeded"
    assert attrs["rollgraph.cost_usd"] == pytest.approx(answer["cost_usd"])
    assert root.status.status_code is StatusCode.UNSET

    steps = steps_of(spans, root)
    assert set(steps) == {"write", "polish"}
    polish = steps["polish"]
    assert polish.name == "chat writer-small"
    assert polish.kind is SpanKind.CLIENT
    step_attrs = attrs_of(polish)
    assert step_attrs["gen_ai.operation.name"] == "chat"
    assert step_attrs["gen_ai.provider.name"] == "sim"
    assert step_attrs["gen_ai.request.model"] == "writer-small"
    assert isinstance(step_attrs["gen_ai.usage.input_tokens"], int)
    assert step_attrs["gen_ai.usage.input_tokens"] > 0
    assert step_attrs["gen_ai.usage.output_tokens"] > 0
    assert step_attrs["rollgraph.cost_usd"] > 0
    assert step_attrs["rollgraph.cache_hit"] is False
    # The steps' real times, inside the run's, in order.
    assert root.start_time is not None and root.end_time is not None
    for step in steps.values():
        assert step.start_time is not None and step.end_time is not None
        assert root.start_time <= step.start_time <= step.end_time <= root.end_time
    assert steps["write"].end_time <= polish.start_time  # type: ignore[operator]
    # Content is off by default: no prompt, parameter or output on any span.
    for span in spans:
        assert PROMPT not in all_values(span)
        assert "gen_ai.input.messages" not in attrs_of(span)
    # The stored trace and the duration's exemplar name the trace.
    assert stored["trace"]["attrs"]["otel_trace_id"] == TRACE_ID
    assert f'trace_id="{TRACE_ID}"' in exposition.text


def test_content_is_recorded_only_when_enabled(tmp_path: Path) -> None:
    with traced_app(tmp_path, capture_content=True) as (client, exporter):
        answer = run(client)
    spans = exporter.get_finished_spans()
    root = run_span(spans, answer["run_id"])
    assert PROMPT in str(attrs_of(root)["rollgraph.input"])
    assert answer["outputs"]["text"] in str(attrs_of(root)["rollgraph.output"])
    polish = steps_of(spans, root)["polish"]
    attrs = attrs_of(polish)
    assert "Polish: " in str(attrs["gen_ai.input.messages"])
    assert "Be brief." in str(attrs["gen_ai.system_instructions"])
    assert answer["outputs"]["text"] in str(attrs["gen_ai.output.messages"])


def test_a_failed_step_has_its_error_type_and_its_retries_as_events(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        answer = run(client, version="v2")
    assert answer["status"] == "failed"
    spans = exporter.get_finished_spans()
    root = run_span(spans, answer["run_id"])
    assert root.status.status_code is StatusCode.ERROR
    assert attrs_of(root)["rollgraph.status"] == "failed"
    polish = steps_of(spans, root)["polish"]
    attrs = attrs_of(polish)
    assert polish.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] in ("rate_limited", "server_error")
    assert attrs["rollgraph.attempts"] == 2
    assert attrs["gen_ai.request.model"] == "broken"
    (retry,) = polish.events
    assert retry.name == "retry"
    assert attrs_of(retry)["rollgraph.attempt"] == 1
    assert attrs_of(retry)["error.type"] in ("rate_limited", "server_error")


def test_a_cache_hit_is_marked(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        first, second = run(client), run(client)
    spans = exporter.get_finished_spans()
    first_write = steps_of(spans, run_span(spans, first["run_id"]))["write"]
    second_write = steps_of(spans, run_span(spans, second["run_id"]))["write"]
    assert attrs_of(first_write)["rollgraph.cache_hit"] is False
    assert attrs_of(second_write)["rollgraph.cache_hit"] is True
    assert attrs_of(second_write)["rollgraph.cost_usd"] == 0


FANNED = """
name: fanned
nodes:
  each:
    uses: map
    with:
      items: [a, b, c]
      node: {uses: llm.generate, with: {model: sim/writer-small, prompt: "${item}"}}
outputs:
  texts: ${each.results}
"""


def test_a_maps_elements_are_spans_nested_in_its_step(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        seed_workflow(client, "fanned", {"v1": FANNED}, {"prod": "v1"})
        answer = client.post("/v1/run", json={"workflow": "fanned", "input": {}}).json()
        assert answer["status"] == "succeeded", answer
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if attrs_of(s).get("rollgraph.run_id") == answer["run_id"]]
    (each,) = steps_of(spans, root).values()
    items = steps_of(spans, each)
    assert set(items) == {"each[0]", "each[1]", "each[2]"}
    first = items["each[0]"]
    assert first.kind is SpanKind.CLIENT and first.name == "chat writer-small"
    assert attrs_of(first)["rollgraph.cost_usd"] > 0
    total = sum(attrs_of(s)["rollgraph.cost_usd"] for s in items.values())
    assert attrs_of(each)["rollgraph.cost_usd"] == pytest.approx(total)


def test_an_async_run_in_process_continues_the_callers_trace(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        accepted = run(client, mode="async")
        run_id = accepted["run_id"]
        for _ in range(500):
            if client.get(f"/v1/runs/{run_id}").json()["status"] != "running":
                break
        state = app_state(client)
        assert state.runs is not None
    root = run_span(exporter.get_finished_spans(), run_id)
    assert f"{root.context.trace_id:032x}" == TRACE_ID
    assert request_span(exporter.get_finished_spans(), root).name == "POST /v1/run"


# -- export off -------------------------------------------------------------------------------
def test_without_otel_variables_nothing_is_traced(tmp_path: Path) -> None:
    key = "rgk" + secrets.token_urlsafe(32)
    settings = Settings(env="test", database_url=f"sqlite:///{tmp_path / 'rg.db'}", admin_key=key)
    app = create_app(settings, run_engine=sim_engine)
    assert isinstance(app, FastAPI)
    assert all(getattr(m, "cls", None) is not TraceContext for m in app.user_middleware)
    with TestClient(app, headers=bearer(key)) as client:
        seed_workflow(client, "traced", {"v1": TRACED}, {"prod": "v1"})
        answer = run(client)
        stored = client.get(f"/v1/runs/{answer['run_id']}").json()
        state = app_state(client)
        assert state.runtime.tracing is None
        assert state.compiler.tracing is None
        assert state.engine.runtime.observer is None  # the engine calls no hook
    assert "otel_trace_id" not in stored["trace"]["attrs"]


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
    ],
)
def test_the_otel_variables_decide_the_export(env: dict[str, str], exporters: list[str]) -> None:
    assert exporters_requested(env) == exporters
    assert export_requested(env) is bool(exporters)
    tracing = open_telemetry(Settings(env="dev"), env=env)
    assert (tracing is not None) is bool(exporters)
    if tracing is not None:
        tracing.shutdown()


def test_content_capture_is_a_setting_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"OTEL_TRACES_EXPORTER": "console"}
    off = open_telemetry(Settings(env="dev"), env=env)
    monkeypatch.setenv("ROLLGRAPH_OTEL_CAPTURE_CONTENT", "true")
    on = open_telemetry(Settings(env="dev"), env=env)
    assert isinstance(off, OtelTracing) and isinstance(on, OtelTracing)
    assert (off.capture_content, on.capture_content) == (False, True)
    off.shutdown()
    on.shutdown()


def test_without_the_extra_export_is_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # None in sys.modules makes an import raise ImportError, as if the extra were absent.
    monkeypatch.delitem(sys.modules, "control_plane.telemetry.tracing", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with caplog.at_level(logging.WARNING, logger="control_plane.telemetry.config"):
        tracing = open_telemetry(Settings(env="dev"), env={"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing is None
    assert "the `otel` extra is not installed" in caplog.text


# -- spans of an engine run, without the app ---------------------------------------------------
CUSTOM = """
name: custom
inputs: {text: text}
nodes:
  judge:
    uses: t.judge
    with: {model: acme/judge-1, text: "${inputs.text}"}
outputs:
  verdict: "${judge.verdict}"
"""


def custom_engine() -> engine.Engine:
    kinds = engine.NodeKinds(load_entry_points=False)

    @engine.node_kind(
        "t.judge",
        inputs={"model": "text", "text": "text"},
        outputs={"verdict": "text"},
        kinds=kinds,
    )
    async def judge(ctx: engine.NodeContext, params: dict[str, Any]) -> engine.NodeResult:
        return engine.NodeResult(
            outputs={"verdict": f"fine: {params['text']}"},
            usage={"tokens_in": 7.0, "seconds": 1.5},
            meta={"response_id": "resp-1", "finish_reason": "stop"},
        )

    return engine.Engine(kinds=kinds, providers=[])


def test_a_custom_model_kind_keeps_its_name_and_reports_its_response() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OtelTracing(provider, capture_content=True)

    async def go() -> engine.RunResult:
        async with custom_engine() as eng:
            eng.observe(tracing.observer)
            workflow = eng.define(CUSTOM)
            return await tracing.traced_run(eng.run, workflow, {"text": PROMPT})

    assert asyncio.run(go()).ok
    (step,) = [s for s in exporter.get_finished_spans() if s.name != "invoke_workflow custom"]
    attrs = attrs_of(step)
    assert step.name == "t.judge judge-1"
    assert attrs["gen_ai.operation.name"] == "t.judge"
    assert attrs["gen_ai.provider.name"] == "acme"
    assert attrs["gen_ai.response.id"] == "resp-1"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 7
    assert attrs["rollgraph.usage.seconds"] == 1.5
    assert PROMPT in attrs["rollgraph.input"] and "fine: " in attrs["rollgraph.output"]
    assert "gen_ai.input.messages" not in attrs  # not a chat kind


def test_a_run_that_breaks_is_an_error_span_and_still_raises() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OtelTracing(provider)

    async def broken(*args: Any, **kw: Any) -> engine.RunResult:
        raise RuntimeError("the store went away")

    workflow = custom_engine().define(CUSTOM)
    with pytest.raises(RuntimeError):
        asyncio.run(tracing.traced_run(broken, workflow, {"text": PROMPT}))
    (span,) = exporter.get_finished_spans()
    assert span.name == "invoke_workflow custom"
    assert span.status.status_code is StatusCode.ERROR
    assert attrs_of(span)["error.type"] == "RuntimeError"
    assert tracing.spans._notes == {}  # nothing kept for a run that ended


def test_a_resume_is_a_span_of_its_own_under_the_resume_requests_trace(tmp_path: Path) -> None:
    with traced_app(tmp_path) as (client, exporter):
        failed = run(client, version="v2")
        other_parent = f"00-{'1' * 32}-{'2' * 16}-01"
        resumed = client.post(
            f"/v1/runs/{failed['run_id']}/resume", json={}, headers={"traceparent": other_parent}
        )
        assert resumed.status_code == 200, resumed.text
    spans = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "invoke_workflow traced" and s.context.trace_id == int("1" * 32, 16)
    ]
    (span,) = spans
    attrs = attrs_of(span)
    assert attrs["rollgraph.run_id"] == failed["run_id"]
    assert attrs["rollgraph.resumed"] is True
    assert attrs["rollgraph.reason"] == "resume"
    # The step that completed before is served from the run's own steps, marked as a hit.
    write = steps_of(exporter.get_finished_spans(), span)["write"]
    assert attrs_of(write)["rollgraph.cache_hit"] is True


# Without the extra: the OpenTelemetry SDK and exporter cannot be imported (FastAPI brings the
# API itself). A server asked to export by OTEL_* warns once and serves runs untraced.
WITHOUT_EXTRA = """
import sys
from importlib.abc import MetaPathFinder


class WithoutExtra(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ImportError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, WithoutExtra())
from fastapi.testclient import TestClient
from control_plane.app import create_app
from control_plane.settings import Settings
from control_plane.telemetry.middleware import TraceContext
from tests.fixtures import GREET, simulated_engine

settings = Settings(env="test", database_url=sys.argv[1], admin_key=sys.argv[2])
app = create_app(settings, run_engine=simulated_engine)
assert all(getattr(m, "cls", None) is not TraceContext for m in app.user_middleware)
with TestClient(app, headers={"Authorization": f"Bearer {sys.argv[2]}"}) as client:
    assert client.post("/v1/workflows", json={"source": GREET, "version": "v1"}).is_success
    assert client.put("/v1/workflows/greet/labels/prod", json={"version": "v1"}).is_success
    answer = client.post(
        "/v1/run", json={"workflow": "greet", "input": {"prompt": "x"}},
        headers={"traceparent": sys.argv[3]},
    )
    assert answer.json()["status"] == "succeeded", answer.text
    assert app.state.runtime.tracing is None
assert not [m for m in sys.modules if m.startswith("opentelemetry.sdk")]
print("served untraced")
"""


def test_without_the_extra_a_configured_server_warns_and_serves_untraced(tmp_path: Path) -> None:
    key = "rgk" + secrets.token_urlsafe(32)
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, f"sqlite:///{tmp_path / 'rg.db'}", key, TRACEPARENT],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "served untraced" in done.stdout
    assert "the `otel` extra is not installed" in done.stderr
