"""The export itself: an SDK ``TracerProvider`` of this process's own (never the global one, so
several apps in one process each keep theirs), with each requested exporter behind a
``BatchSpanProcessor`` (spans leave in the background; ``shutdown`` flushes what is left).

Imported only when export is on (``config.open_telemetry``): this module needs the ``otel``
extra.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

import engine
from control_plane.telemetry.config import RunCall
from control_plane.telemetry.spans import RunSpans

__all__ = ["OtelTracing", "build_tracing"]

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "rollgraph"


def _version() -> str:
    try:
        return metadata.version("rollgraph")
    except metadata.PackageNotFoundError:
        return "unknown"


def _resource(env: Mapping[str, str]) -> Resource:
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, but attributes
    # passed here win over them: name the service only when the operator has not.
    attributes: dict[str, Any] = {"service.version": _version()}
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        attributes["service.name"] = DEFAULT_SERVICE_NAME
    return Resource.create(attributes)


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        )
        if protocol and protocol != "http/protobuf":
            log.warning("OTLP protocol %r is not supported; exporting with http/protobuf", protocol)
        # Endpoint, headers, timeout and compression come from the OTEL_EXPORTER_OTLP_* variables.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    log.warning("trace exporter %r is not supported (otlp, console); ignored", name)
    return None


def build_tracing(
    exporters: list[str], *, capture_content: bool, env: Mapping[str, str] | None = None
) -> OtelTracing | None:
    """An export to ``exporters`` (names from ``OTEL_TRACES_EXPORTER``); ``None`` when none of
    them is supported."""
    made = [e for e in map(_exporter, exporters) if e is not None]
    if not made:
        return None
    provider = TracerProvider(resource=_resource(os.environ if env is None else env))
    for exporter in made:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return OtelTracing(provider, capture_content=capture_content)


class OtelTracing:
    """Runs recorded as spans on ``provider``; ``capture_content`` adds prompts, parameters and
    outputs to them. Tests build one on a provider with an in-memory exporter."""

    def __init__(self, provider: TracerProvider, *, capture_content: bool = False) -> None:
        self.provider = provider
        self.capture_content = capture_content
        self.tracer = provider.get_tracer("rollgraph", _version())  # requests' spans use it too
        self.spans = RunSpans(self.tracer, capture_content=capture_content)

    @property
    def observer(self) -> engine.RunObserver:
        return self.spans

    async def traced_run(
        self, run: RunCall, workflow: engine.Workflow, inputs: Mapping[str, Any], **kw: Any
    ) -> engine.RunResult:
        return await self.spans.traced(run, workflow, inputs, **kw)

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier.get("traceparent")

    @contextmanager
    def continued(self, traceparent: str | None) -> Iterator[None]:
        if not traceparent:
            yield
            return
        token = otel_context.attach(propagate.extract({"traceparent": traceparent}))
        try:
            yield
        finally:
            otel_context.detach(token)

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes every batch processor first
