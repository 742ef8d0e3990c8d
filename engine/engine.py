"""The engine's front door: define a workflow, run it, resume it.

```python
import engine

wf = engine.define(open("examples/product-video/v3.3.yaml").read())
result = await engine.run(wf, {"prompt": "a red sneaker"})
print(result.outputs, result.trace.cost_usd)
```

An ``Engine`` holds what outlives runs (providers, their concurrency limits, the step cache, the
HTTP allow-list); ``engine.run`` builds a throw-away one for notebooks and scripts.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.budget import Budget, BudgetGuard
from engine.cache import StepCache
from engine.codec import to_jsonable
from engine.context import Runtime
from engine.criteria import CRITERIA_FAILED, evaluate
from engine.errors import DefinitionError, Problem, RunError, ValidationError
from engine.executor import RunState
from engine.gc_pause import collector_paused
from engine.http_policy import HttpAdvice, HttpPolicy
from engine.limits import Limits
from engine.node_kinds import NodeKinds, default_kinds
from engine.observe import RunObserver
from engine.providers import Provider, default_providers
from engine.spec import load_spec
from engine.trace import RunId, RunStatus, StepTrace, Trace
from engine.validate import compile_workflow
from engine.workflow import Workflow

__all__ = [
    "Engine",
    "RunResult",
    "Source",
    "check",
    "define",
    "new_run_id",
    "run",
    "run_budget",
    "run_sync",
]

Source = str | bytes | Path | dict[str, Any] | Workflow


class _RunIds:
    """Run ids: 32 hex digits, time-ordered like UUIDv7: 48-bit milliseconds, 40 bits that are
    random per process (drawn again in a forked child), then a 40-bit counter from a random
    start. Unique across processes and replicas without a system call per run."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(5).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(5)))
        self.reset_seed_base()

    def reset_seed_base(self) -> None:
        self.seed_base = (int(self.prefix, 16) & 0xFFFFF) << 40
        self.ms, self.head = -1, ""

    def next(self) -> tuple[RunId, int]:
        """A new run id and its default seed (what ``_seed_for`` gives for that id)."""
        count = next(self.counter) & 0xFFFFFFFFFF
        ms = int(time.time() * 1000)
        if ms != self.ms:
            self.ms, self.head = ms, f"{ms:012x}{self.prefix}"
        return RunId(f"{self.head}{count:010x}"), self.seed_base | count


_run_ids = _RunIds()


def new_run_id() -> RunId:
    return _run_ids.next()[0]


def _seed_for(run_id: str) -> int:
    """A run's default seed: stable for the run id (so a resume replays the same draws)."""
    try:
        return int(run_id[-15:], 16)
    except ValueError:  # a caller-chosen run id that is not hex
        return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=8).digest()) >> 1


@dataclass(slots=True)
class RunResult:
    run_id: RunId
    status: RunStatus
    outputs: dict[str, Any] | None
    trace: Trace

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def error(self) -> str | None:
        return self.trace.error

    def raise_for_status(self) -> RunResult:
        if not self.ok:
            raise RunError(f"run {self.run_id} failed: {self.trace.error}")
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "outputs": to_jsonable(self.outputs),
            "error": self.trace.error,
            "trace": self.trace.to_json(),
        }


def attempt_seed(seed: int, run_attempt: int) -> int:
    """The seed the steps of one attempt draw from. The first attempt uses the run's seed, so a
    fresh run with the same seed replays exactly; a resume draws afresh (the simulator's
    transient failures included) and stays reproducible for the same attempt number."""
    if run_attempt <= 1:
        return seed
    material = f"{seed}\x1fattempt\x1f{run_attempt}".encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest()) >> 1


def run_budget(wf: Workflow, budget: Budget | None, *, replace: bool = False) -> Budget | None:
    """The budget a run of ``wf`` has: the workflow's, lowered (or replaced) by ``budget``."""
    own = None if replace else Budget.of(wf.spec.budget)
    limits = budget if own is None else own.lowered(budget)
    return limits if limits is not None and limits.limited else None


@cache
def _catalogue() -> tuple[Provider, ...]:
    """Providers consulted by define-time model checks when no engine is given."""
    return tuple(default_providers())


def _compile(
    source: str | bytes | Path | dict[str, Any],
    kinds: NodeKinds | None,
    providers: Iterable[Provider] | None,
    limits: Limits | None,
) -> tuple[Workflow | None, list[Problem]]:
    limits = limits or Limits()
    provs = {p.name: p for p in (providers if providers is not None else _catalogue())}
    with collector_paused():  # see engine.gc_pause: the work is bounded by ``limits``
        spec, smap = load_spec(source, max_nodes=limits.max_nodes)
        workflow, problems = compile_workflow(
            spec, kinds=kinds or default_kinds, providers=provs, limits=limits
        )
    located = [replace(p, line=smap.line(p.location)) for p in problems]
    if workflow is not None:
        workflow = replace(workflow, warnings=tuple(p for p in located if p.severity == "warning"))
    return workflow, located


def check(
    source: Source,
    *,
    kinds: NodeKinds | None = None,
    providers: Iterable[Provider] | None = None,
    limits: Limits | None = None,
) -> list[Problem]:
    """Every problem of a definition (errors and warnings); never raises for a bad definition.
    ``limits`` bound its size (default: ``Limits()``)."""
    if isinstance(source, Workflow):
        return list(source.warnings)
    try:
        return _compile(source, kinds, providers, limits)[1]
    except DefinitionError as exc:
        return list(exc.problems)


def define(
    source: Source,
    *,
    kinds: NodeKinds | None = None,
    providers: Iterable[Provider] | None = None,
    limits: Limits | None = None,
) -> Workflow:
    """Parse and check a definition; raise ``DefinitionError`` or ``ValidationError`` listing
    every problem. ``limits`` bound its size (default: ``Limits()``)."""
    if isinstance(source, Workflow):
        return source
    workflow, problems = _compile(source, kinds, providers, limits)
    if workflow is None:
        raise ValidationError(problems)
    return workflow


class Engine:
    """Long-lived runner: providers, concurrency limits, step cache, HTTP allow-list, bounds on
    work (``limits``, see ``engine.limits``)."""

    def __init__(
        self,
        *,
        providers: Iterable[Provider] | None = None,
        cache: StepCache | None = None,
        kinds: NodeKinds | None = None,
        http_allow_hosts: Iterable[str] = (),
        http_allow_networks: Iterable[str] = (),
        concurrency: Mapping[str, int] | None = None,
        http_client: httpx.AsyncClient | None = None,
        limits: Limits | None = None,
        http_advice: HttpAdvice | None = None,
    ) -> None:
        self.kinds = kinds or default_kinds
        self.providers = list(providers) if providers is not None else default_providers()
        self.cache = cache
        self.limits = limits or Limits()
        self.runtime = Runtime(
            providers=self.providers,
            kinds=self.kinds,
            http_allow_hosts=http_allow_hosts,
            http_allow_networks=http_allow_networks,
            concurrency=concurrency,
            http_client=http_client,
            limits=self.limits,
            http_advice=http_advice,
        )

    def configure(
        self,
        *,
        limits: Limits,
        http_allow_hosts: Iterable[str] = (),
        http_allow_networks: Iterable[str] = (),
        http_advice: HttpAdvice | None = None,
        concurrency: Mapping[str, int] | None = None,
    ) -> None:
        """Replace the bounds on work, the http allow-list and (when given) the per-provider
        concurrency: a host application (the control plane) applies its settings to whichever
        engine it was given, before its first run. Workflows compiled before keep the template
        bound they were compiled with."""
        self.limits = limits
        self.runtime.limits = limits
        self.runtime.http_policy = HttpPolicy(http_allow_hosts, http_allow_networks, http_advice)
        if concurrency:
            self.runtime.set_concurrency(concurrency)

    def observe(self, observer: RunObserver | None) -> None:
        """Tell ``observer`` about retries and step content (``engine.observe``); None stops."""
        self.runtime.observer = observer

    def define(self, source: Source) -> Workflow:
        return define(source, kinds=self.kinds, providers=self.providers, limits=self.limits)

    def check(self, source: Source) -> list[Problem]:
        return check(source, kinds=self.kinds, providers=self.providers, limits=self.limits)

    async def run(
        self,
        workflow: Source,
        inputs: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        seed: int | None = None,
        deadline_s: float | None = None,
        attrs: Mapping[str, Any] | None = None,
        resumed: bool = False,
        taken_over: bool = False,
        cache: StepCache | None = None,
        watch: Callable[[Trace], object] | None = None,
        budget: Budget | None = None,
        replace_budget: bool = False,
        run_attempt: int = 1,
    ) -> RunResult:
        """Run to completion. A failed node fails the result, it does not raise; bad inputs do.

        ``budget`` lowers the workflow's budget for this run (each limit the lower of the two);
        with ``replace_budget`` it stands instead of the workflow's (a resume that raises it).
        ``run_attempt``: executions of this run id so far, this one included (1 + resumes).

        ``cache`` is this run's step cache, instead of the engine's: a server keeps each run's
        completed steps where that run can be resumed from. ``taken_over``: this attempt goes on
        from steps another process completed in the same attempt (it stopped mid-run); they
        were billed there and never reported, so they count as this run's cost, once.

        ``watch`` is handed the run's live trace as the run starts: a host that shows progress
        reads it (on the event loop) while the run goes on; the engine calls nothing per step."""
        wf = workflow if isinstance(workflow, Workflow) else self.define(workflow)
        bound = wf.bind_inputs(inputs or {})
        if run_id:
            rid, default_seed = RunId(run_id), _seed_for(run_id)
        else:
            rid, default_seed = _run_ids.next()
        run_seed = seed if seed is not None else default_seed
        trace = Trace(
            rid,
            wf.name,
            wf.version,
            wf.digest,
            {n: StepTrace(n, kind) for n, kind in wf.step_kinds},
            resumed=resumed or taken_over,
            taken_over=taken_over,
            seed=run_seed,
            attrs=dict(attrs) if attrs else None,
        )
        step_cache = cache if cache is not None else self.cache
        state = RunState(
            wf, self.runtime, step_cache, trace, bound, attempt_seed(run_seed, run_attempt)
        )
        limits = run_budget(wf, budget, replace=replace_budget)
        if limits is not None:
            state.guard = BudgetGuard(limits, self.runtime)
        if watch is not None:
            watch(trace)
        limit = wf.spec.deadline_s
        if deadline_s is not None:
            limit = deadline_s if limit is None else min(limit, deadline_s)
        await state.execute(limit)
        trace.perf_end = time.perf_counter()
        if trace.status == "running":
            trace.status = "succeeded"
        outputs = state.final_outputs() if trace.status == "succeeded" else None
        if outputs is not None and wf.spec.success:
            failed = evaluate(wf.criteria, outputs, trace)
            if failed is not None:  # completed, but not what the workflow promises
                trace.status = "failed"
                trace.error = f"success criteria not met: {failed}"
                trace.error_code = CRITERIA_FAILED
                outputs = None
        return RunResult(rid, trace.status, outputs, trace)

    async def resume(
        self, workflow: Source, run_id: str, inputs: Mapping[str, Any] | None = None, **kw: Any
    ) -> RunResult:
        """Run again under the same run id: completed steps come from the cache, unbilled."""
        if self.cache is None and kw.get("cache") is None:
            raise RunError("resume needs a step cache; create the Engine with cache=...")
        return await self.run(workflow, inputs, run_id=run_id, resumed=True, **kw)

    async def aclose(self) -> None:
        await self.runtime.aclose()
        if self.cache is not None:
            await self.cache.aclose()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def run(workflow: Source, inputs: Mapping[str, Any] | None = None, **kw: Any) -> RunResult:
    """Run once with a throw-away engine (simulated and OpenAI-compatible providers)."""
    async with Engine() as eng:
        return await eng.run(workflow, inputs, **kw)


def run_sync(workflow: Source, inputs: Mapping[str, Any] | None = None, **kw: Any) -> RunResult:
    return asyncio.run(run(workflow, inputs, **kw))
