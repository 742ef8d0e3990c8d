"""A run as spans: ``invoke_workflow {workflow}`` and one child per step that started, made from
the trace the engine returns, with the steps' real start and end times.

Spans are created after the run from its trace rather than while it runs, so the engine stays
free of OpenTelemetry and a run pays nothing per step for them; what the trace does not hold
(each retried attempt; prompts and outputs) comes from the engine's observer hooks
(``engine.observe``), kept here per run only while it is being traced.

Attributes follow the GenAI semantic conventions (semconv 1.41: ``gen_ai.operation.name``
``invoke_workflow`` and ``gen_ai.workflow.name`` on the run; ``chat`` or ``generate_content``,
``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.usage.*_tokens`` and ``error.type``
on a model step). What the conventions have no name for is ``rollgraph.*``: cost
(``rollgraph.cost_usd``), version, label, arm, experiment, run id, cache hits. Content (prompts,
parameters, outputs) is recorded only with ``capture_content``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

import engine
from control_plane.telemetry.config import RunCall
from engine.codec import to_jsonable

__all__ = ["RunSpans", "step_operation"]

# Model kinds and their GenAI operation; another kind that takes a model keeps its own name
# (the conventions allow a custom value where none of theirs applies, e.g. ``moderate``).
_OPERATIONS = {
    "llm.generate": "chat",
    "prompt.enhance": "chat",
    "image.generate": "generate_content",
    "video.generate": "generate_content",
    "audio.tts": "generate_content",
    "music.generate": "generate_content",
}
_TOKENS = {"tokens_in": "gen_ai.usage.input_tokens", "tokens_out": "gen_ai.usage.output_tokens"}
_MAX_CONTENT_CHARS = 64 * 1024  # a captured value past this is cut (a span is not a blob store)
Attributes = dict[str, AttributeValue]


def step_operation(kind: str) -> str:
    return _OPERATIONS.get(kind, kind)


def _json(value: Any) -> str:
    text = json.dumps(to_jsonable(value), ensure_ascii=False, default=str)
    return text if len(text) <= _MAX_CONTENT_CHARS else text[:_MAX_CONTENT_CHARS] + "…"


@dataclass(slots=True)
class _Notes:
    """What the observer saw of one traced run: retries per node, content per node."""

    retries: dict[str, list[tuple[int, Attributes]]] = field(default_factory=dict)
    content: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = field(default_factory=dict)


class RunSpans:
    """Records traced runs on ``tracer``; also the engine's observer (``engine.RunObserver``)."""

    def __init__(self, tracer: Tracer, *, capture_content: bool) -> None:
        self._tracer = tracer
        self._capture = capture_content
        self._notes: dict[str, _Notes] = {}  # runs being traced in this process
        # Per workflow digest (immutable): node → its literal ``provider/model`` (model kinds).
        self._models: dict[str, dict[str, str]] = {}

    # -- engine.RunObserver -------------------------------------------------------------------
    def retrying(
        self,
        run_id: str,
        node: str,
        item: int | None,
        attempt: int,
        error: engine.NodeError,
        delay_s: float,
    ) -> None:
        notes = self._notes.get(run_id)
        if notes is None:
            return
        attrs: Attributes = {
            "rollgraph.attempt": attempt,
            "error.type": error.code,
            "rollgraph.error": str(error),
            "rollgraph.retry_delay_s": round(delay_s, 6),
        }
        if item is not None:
            attrs["rollgraph.item"] = item
        notes.retries.setdefault(node, []).append((time.time_ns(), attrs))

    def step_content(
        self, run_id: str, node: str, params: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        if self._capture and (notes := self._notes.get(run_id)) is not None:
            notes.content[node] = (params, outputs)

    # -- a run --------------------------------------------------------------------------------
    async def traced(
        self, run: RunCall, workflow: engine.Workflow, inputs: Mapping[str, Any], **kw: Any
    ) -> engine.RunResult:
        # Named now (the engine would otherwise), so the observer's notes can be found by it.
        run_id = kw.get("run_id") or engine.new_run_id()
        kw["run_id"] = run_id
        parent = otel_context.get_current()
        started = time.time_ns()
        notes = self._notes[run_id] = _Notes()
        try:
            result = await run(workflow, inputs, **kw)
        except engine.InputBindingError:
            raise  # refused before anything ran (a 422): no run to record
        except BaseException as exc:
            attrs = {**self._identity(workflow.name, workflow.version, run_id, kw.get("attrs"))}
            attrs["error.type"] = type(exc).__qualname__
            span = self._start(f"invoke_workflow {workflow.name}", parent, started, attrs)
            span.set_status(Status(StatusCode.ERROR, repr(exc)))
            span.end()
            raise
        finally:
            self._notes.pop(run_id, None)
        trace_id = self._record(result, inputs, notes, parent, self._models_of(workflow))
        # The stored trace names its OpenTelemetry trace, and the duration's exemplar carries it.
        result.trace.attrs = {**result.trace.attrs, "otel_trace_id": trace_id}
        return result

    def _models_of(self, workflow: engine.Workflow) -> dict[str, str]:
        models = self._models.get(workflow.digest)
        if models is None:
            models = self._models[workflow.digest] = {
                node_id: node.static["model"]
                for node_id, node in workflow.nodes.items()
                if isinstance(node.static.get("model"), str)
            }
            for node_id, node in workflow.nodes.items():
                plan = node.map_plan  # its elements' model, under `node[]`
                if plan is not None and isinstance(plan.static.get("model"), str):
                    models[f"{node_id}[]"] = plan.static["model"]
        return models

    def _start(
        self,
        name: str,
        parent: otel_context.Context,
        start_ns: int,
        attrs: Attributes,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> trace_api.Span:
        return self._tracer.start_span(
            name, context=parent, kind=kind, attributes=attrs, start_time=start_ns
        )

    @staticmethod
    def _identity(
        workflow: str, version: str | None, run_id: str, attrs: Mapping[str, Any] | None
    ) -> Attributes:
        attrs = attrs or {}
        found: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": workflow,
            "rollgraph.version": version,
            "rollgraph.run_id": run_id,
            "rollgraph.label": attrs.get("label"),
            "rollgraph.arm": attrs.get("assignment"),  # baseline | candidate | random | pin
            "rollgraph.experiment_id": attrs.get("experiment"),
            "rollgraph.reason": attrs.get("reason"),
        }
        return {k: v for k, v in found.items() if v is not None}

    def _record(
        self,
        result: engine.RunResult,
        inputs: Mapping[str, Any],
        notes: _Notes,
        parent: otel_context.Context,
        models: Mapping[str, str],
    ) -> str:
        trace = result.trace

        def wall_ns(perf: float | None) -> int:
            if perf is None:
                return time.time_ns()
            return int((trace.wall_start + (perf - trace.perf_start)) * 1e9)

        attrs = self._identity(trace.workflow, trace.version, trace.run_id, trace.attrs)
        attrs.update(
            {
                "rollgraph.status": trace.status,
                "rollgraph.cost_usd": round(trace.cost_usd, 8),
                "rollgraph.digest": trace.digest,
                "rollgraph.resumed": trace.resumed,
            }
        )
        if self._capture:
            attrs["rollgraph.input"] = _json(dict(inputs))
            if result.outputs is not None:
                attrs["rollgraph.output"] = _json(result.outputs)
        span = self._start(
            f"invoke_workflow {trace.workflow}", parent, int(trace.wall_start * 1e9), attrs
        )
        inside = trace_api.set_span_in_context(span, parent)
        for step in trace.steps.values():
            self._step_span(step, models.get(step.node), models, inside, notes, wall_ns)
        if trace.status in ("failed", "budget_exceeded"):
            span.set_attribute("error.type", trace.error_code or "run_failed")
            span.set_status(Status(StatusCode.ERROR, trace.error))
        span.end(end_time=wall_ns(trace.perf_end))
        return trace_api.format_trace_id(span.get_span_context().trace_id)

    def _step_span(
        self,
        step: engine.StepTrace,
        model: str | None,
        models: Mapping[str, str],
        parent: otel_context.Context,
        notes: _Notes,
        wall_ns: Callable[[float | None], int],
    ) -> None:
        if step.started is None:
            return  # skipped before it started: nothing ran
        child = self._start(
            _step_name(step, model),
            parent,
            wall_ns(step.started),
            self._step_attrs(step, model, notes),
            SpanKind.CLIENT if model else SpanKind.INTERNAL,
        )
        for at, event in notes.retries.get(step.node, ()):
            child.add_event("retry", event, timestamp=at)
        if step.error_code or step.status in ("failed", "fallback"):
            child.set_status(Status(StatusCode.ERROR, step.error))
        if step.items:  # a map's elements, each a step: its children
            inside = trace_api.set_span_in_context(child, parent)
            item_model = models.get(f"{step.node}[]")
            for item in step.items:
                self._step_span(item, item_model, models, inside, notes, wall_ns)
        child.end(end_time=wall_ns(step.ended))

    def _step_attrs(self, step: engine.StepTrace, model: str | None, notes: _Notes) -> Attributes:
        attrs: Attributes = {
            "rollgraph.node": step.node,
            "rollgraph.kind": step.kind,
            "rollgraph.step.status": step.status,
            "rollgraph.attempts": int(step.attempts),
            "rollgraph.cost_usd": round(step.cost_usd, 8),
            "rollgraph.cache_hit": bool(step.cache_hit),
        }
        if step.cost_saved_usd:
            attrs["rollgraph.cost_saved_usd"] = round(step.cost_saved_usd, 8)
        if step.error_code or step.status in ("failed", "fallback"):
            attrs["error.type"] = step.error_code or "node_error"
        if model is not None:
            provider, _, name = model.partition("/")
            attrs["gen_ai.operation.name"] = step_operation(step.kind)
            attrs["gen_ai.provider.name"] = provider
            attrs["gen_ai.request.model"] = name or model
            meta = step.meta
            if isinstance(meta.get("response_id"), str):
                attrs["gen_ai.response.id"] = meta["response_id"]
            if isinstance(meta.get("finish_reason"), str):
                attrs["gen_ai.response.finish_reasons"] = [meta["finish_reason"]]
        for key, value in step.usage.items():
            attrs[_TOKENS.get(key, f"rollgraph.usage.{key}")] = (
                int(value) if key in _TOKENS else float(value)
            )
        content = notes.content.get(step.node)
        if content is not None:
            attrs.update(_content(step.kind, *content))
        return attrs


def _step_name(step: engine.StepTrace, model: str | None) -> str:
    # The conventions' "{operation} {model}" for model calls; the kind and node otherwise.
    if model is None:
        return f"{step.kind} {step.node}"
    return f"{step_operation(step.kind)} {model.partition('/')[2] or model}"


def _content(kind: str, params: Mapping[str, Any], outputs: Mapping[str, Any]) -> Attributes:
    """A step's parameters and outputs; for chat steps also as GenAI messages."""
    attrs: Attributes = {
        "rollgraph.input": _json(dict(params)),
        "rollgraph.output": _json(dict(outputs)),
    }
    if _OPERATIONS.get(kind) == "chat" and isinstance(params.get("prompt"), str):
        message = [{"role": "user", "parts": [{"type": "text", "content": params["prompt"]}]}]
        attrs["gen_ai.input.messages"] = _json(message)
        if isinstance(params.get("system"), str):
            attrs["gen_ai.system_instructions"] = _json(
                [{"type": "text", "content": params["system"]}]
            )
        if isinstance(outputs.get("text"), str):
            answer = [
                {"role": "assistant", "parts": [{"type": "text", "content": outputs["text"]}]}
            ]
            attrs["gen_ai.output.messages"] = _json(answer)
    return attrs
