"""The metric objects and the calls that record into them.

Names follow Prometheus conventions: one prefix (``rollgraph_``), base units (seconds, dollars
in ``_usd``, ratios 0–1), counters end in ``_total``, latencies are histograms (never summaries)
with buckets from 5 ms to 10 min, because a model call takes from milliseconds to minutes.

Label sets stay bounded: workflow, version, node kind, metric and experiment names come from
the registry (operators create them), reasons and status classes from fixed sets; a user id, a
run id or a raw path is never a label value (the run id rides along as an exemplar only).

Each thing is counted exactly once, where it is committed (see ``observe_*`` for what and why),
so that the counters can be compared with the store: nothing lost, nothing counted twice.

**One process or several.** ``Metrics`` picks the mode prometheus-client chose when it was
first imported: with ``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its values to
files in that directory and a scrape (answered by any worker) merges them with
``MultiProcessCollector``. The directory must exist and be **empty when the server starts**:
files of an earlier server would be added to this one's counters. ``rollgraph serve --workers
N`` creates a fresh temporary directory when the variable is not set. In multiprocess mode:

* exemplars are not supported by prometheus-client (they are silently dropped);
* the only process-local gauge, ``rollgraph_build_info``, uses mode ``max`` (the same 1 in
  every worker); the store-backed gauges are computed at scrape time and need no mode;
* a process should create one ``Metrics``: two in one process would overwrite each other's
  values in the shared per-process files (the app creates one; tests run one process mode).

In one process, each ``Metrics`` has its own ``CollectorRegistry`` (not the global default), so
that several apps in one test process each start from zero.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import TYPE_CHECKING, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlmodel import Session

from control_plane.metrics.evaluations import EvaluationMetrics
from control_plane.metrics.shadow import ShadowMetrics

if TYPE_CHECKING:
    import engine


class RunFacts(Protocol):
    """What the metrics read of a stored run (``runs.schemas.RunPublic`` has it): the metrics
    sit below every domain, so they name the shape, not the schema."""

    @property
    def run_id(self) -> str: ...
    @property
    def workflow(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def reason(self) -> str: ...


__all__ = [
    "ASSIGNMENT_REASONS",
    "DURATION_BUCKETS",
    "Metrics",
    "after_commit",
    "assignment_reason",
    "multiprocess_dir",
]

log = logging.getLogger(__name__)

# No `_created` series: in the classic text format Prometheus stores them as extra gauges per
# labelled series (doubling them) for nothing a rate() needs. Process-wide, like the client.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "rollgraph"
# 5 ms (a cached step, a template) to 10 min (a long generation); +Inf is added by the client.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip
ASSIGNMENT_REASONS = ("pin", "label", "rollout", "experiment", "random")


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client runs in multiprocess mode, else
    ``None``. The mode is fixed when prometheus-client is first imported (its value class is
    chosen then), so the variable alone is not proof: the value class is."""
    if values.ValueClass is values.MutexValue:
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def assignment_reason(reason: str) -> str:
    """A run's reason (``rollout bucket 1234``, ``experiment 7 bucket 12``, …) reduced to the
    bounded set ``pin | label | rollout | experiment | random`` (``other`` never expected)."""
    head = reason.split(" ", 1)[0]
    return head if head in ASSIGNMENT_REASONS else "other"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` once ``session`` commits (never when it rolls back), for counting what
    a request handler wrote only once the request boundary has committed it. A failing
    callback is logged: the commit it follows has happened and must not turn into an error."""

    def fire(_session: Session) -> None:
        try:
            callback()
        except Exception:
            log.exception("recording metrics after a commit failed")

    event.listen(session, "after_commit", fire, once=True)


def _version() -> str:
    try:
        return metadata.version("rollgraph")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """The process's metrics. ``registry`` is what ``/metrics`` exposes: this object's metrics
    (one process) or the merged files of every worker (multiprocess), plus any collector added
    with ``add_collector`` (read at scrape time)."""

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_dir()
        self.registry = CollectorRegistry(auto_describe=True)
        # Multiprocess: values go to files, read back by MultiProcessCollector; registering the
        # live objects as well would report each value twice.
        own: CollectorRegistry | None = None
        if self.multiprocess_dir is not None:
            MultiProcessCollector(self.registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            own = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=own)

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
            return Histogram(
                f"{PREFIX}_{name}", doc, labels, registry=own, buckets=DURATION_BUCKETS
            )

        self.build_info = Gauge(
            f"{PREFIX}_build_info",
            "1, labelled with the running rollgraph and Python versions",
            ("version", "python"),
            registry=own,
            multiprocess_mode="max",
        )
        self.build_info.labels(_version(), platform.python_version()).set(1)
        # The "_total" suffix is added by prometheus-client; names here are without it.
        self.runs = counter(
            "runs",
            "Runs that ended, counted at their first end (a resume is counted in "
            "rollgraph_run_resumes_total), by the status they ended with",
            ("workflow", "version", "status", "mode"),
        )
        self.resumes = counter(
            "run_resumes",
            "Resumed attempts of failed runs that ended, by the status they ended with",
            ("workflow", "version", "status"),
        )
        self.run_duration = histogram(
            "run_duration_seconds",
            "Engine time of each ended attempt of a run (a first run or a resume)",
            ("workflow", "version"),
        )
        self.run_cost = counter(
            "run_cost_usd", "Dollars billed by ended run attempts", ("workflow", "version")
        )
        self.node_duration = histogram(
            "node_duration_seconds",
            "Time of each executed node step (cache hits excluded), retries included",
            ("workflow", "kind"),
        )
        self.node_attempts = counter(
            "node_attempts", "Executions of node steps, retries included", ("workflow", "kind")
        )
        self.node_retries = counter(
            "node_retries", "Executions of node steps after their first", ("workflow", "kind")
        )
        self.node_cache_hits = counter(
            "node_cache_hits",
            "Node steps served from the step cache (not executed, not billed)",
            ("workflow", "kind"),
        )
        self.assignments = counter(
            "assignments",
            "Runs stored after routing, by the version chosen and why "
            "(pin | label | rollout | experiment | random)",
            ("workflow", "version", "reason"),
        )
        self.outcomes = counter(
            "outcomes", "Outcome values recorded (repeats of a value excluded)",
            ("workflow", "metric"),
        )  # fmt: skip
        self.experiment_decisions = counter(
            "experiment_decisions",
            "Experiment decisions stored (a decision is stored when it is news or acted on), "
            "by what the analysis decided",
            ("experiment", "action"),
        )
        self.experiment_actions = counter(
            "experiment_actions",
            "Actions applied to experiments: ramp | rollback | promote",
            ("experiment", "action"),
        )
        self.http_requests = counter(
            "http_requests",
            "HTTP requests answered, by route template and status class",
            ("route", "method", "status_class"),
        )
        self.http_duration = histogram(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route template",
            ("route", "method"),
        )

        self.redis_errors = counter(
            "redis_errors",
            "Redis calls that failed or timed out (Redis away: sync runs fall back to local "
            "caches, async submissions are refused with 503), by operation",
            ("operation",),
        )
        # Shadow runs count only here (``metrics.shadow``), never in the served runs' metrics.
        self.shadow = ShadowMetrics(counter, histogram)
        # Evaluators' scores and spend: billed apart from the runs they score.
        self.evaluations = EvaluationMetrics(counter)
        self.dead_letters = counter(
            "run_dead_letters",
            "Queued runs moved to the dead-letter stream (failed, or deliveries ran out)",
            (),
        )

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)

    # -- recording ----------------------------------------------------------------------------
    def observe_run(self, run: RunFacts, result: engine.RunResult, *, first_end: bool) -> None:
        """A run attempt ended and was committed. ``first_end``: the run's first end (a sync
        run, or an accepted async run), counted in ``runs_total``; otherwise a resume's end,
        counted in ``run_resumes_total``, so that ``runs_total`` counts each stored run once.
        Duration, cost and node metrics count every attempt: each executed (and billed) its
        own steps."""
        workflow, version = run.workflow, run.version
        if first_end:
            self.runs.labels(workflow, version, run.status, run.mode).inc()
        else:
            self.resumes.labels(workflow, version, run.status).inc()
        trace = result.trace
        latency = trace.latency_s
        if latency is not None:
            exemplar = None
            if not self.multiprocess_dir:
                exemplar = {"run_id": run.run_id}
                # With an OpenTelemetry export, the run's trace (control_plane.telemetry).
                otel_trace_id = trace.attrs.get("otel_trace_id")
                if isinstance(otel_trace_id, str):
                    exemplar["trace_id"] = otel_trace_id
            self.run_duration.labels(workflow, version).observe(latency, exemplar=exemplar)
        cost = trace.cost_usd
        if cost > 0:
            self.run_cost.labels(workflow, version).inc(cost)
        for step in _executed(trace):
            kind = step.kind
            if step.cache_hit:
                self.node_cache_hits.labels(workflow, kind).inc()
                continue
            attempts = int(step.attempts or 0)
            if attempts <= 0:
                continue  # skipped or never started: nothing executed
            self.node_attempts.labels(workflow, kind).inc(attempts)
            if attempts > 1:
                self.node_retries.labels(workflow, kind).inc(attempts - 1)
            step_latency = step.latency_s
            if step_latency is not None:
                self.node_duration.labels(workflow, kind).observe(step_latency)

    def observe_failed_end(
        self, *, workflow: str, version: str, mode: str, attempt: int, shadow: bool = False
    ) -> None:
        """A running run was stored failed without a result: stopped at shutdown, broken, or
        orphaned by a stopped process (the sweep). Attempt 1 is the run's first end."""
        if shadow:
            if attempt <= 1:
                self.shadow.runs.labels(workflow, version, "failed").inc()
            return
        if attempt <= 1:
            self.runs.labels(workflow, version, "failed", mode).inc()
        else:
            self.resumes.labels(workflow, version, "failed").inc()

    def observe_assignment(self, run: RunFacts) -> None:
        """A routed run was stored (a sync run when it ended, an async one when accepted)."""
        self.assignments.labels(run.workflow, run.version, assignment_reason(run.reason)).inc()

    def observe_outcomes(self, workflow: str, recorded: dict[str, str]) -> None:
        for metric, what in recorded.items():
            if what == "recorded":
                self.outcomes.labels(workflow, metric).inc()

    def observe_evaluation(
        self, experiment_id: int, *, action: str, applied: str | None, stored: bool
    ) -> None:
        experiment = str(experiment_id)
        if stored:
            self.experiment_decisions.labels(experiment, action).inc()
        if applied is not None:
            self.experiment_actions.labels(experiment, applied).inc()

    def observe_http(self, *, route: str, method: str, status: int, duration_s: float) -> None:
        self.http_requests.labels(route, method, f"{status // 100}xx").inc()
        self.http_duration.labels(route, method).observe(duration_s)


def _executed(trace: engine.Trace) -> Iterator[engine.StepTrace]:
    """Each step, and a map's elements after it: each element is a step of its inner kind,
    executed (and billed) or taken from the cache like any other."""
    for step in trace.steps.values():
        yield step
        if step.items:
            yield from step.items
