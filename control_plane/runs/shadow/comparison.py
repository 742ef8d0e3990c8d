"""Served vs shadow on a label, paired by request: each served run with the shadow run that ran
its inputs (the first one, should a request have been mirrored twice).

Metrics: success (McNemar's exact test), latency and cost (the paired t-test), and every
outcome metric recorded on both runs of a pair (the paired t-test; a 0/1 outcome is a mean).
The statistics are ``analysis.paired``'s; this module only reads the pairs from the store, the
newest ``limit`` of them, so the answer's cost is bounded however long the shadow has run.
A comparison is read again and again while the shadow runs, so the verdicts rest on the
always-valid p-value of ``analysis.paired_sequential`` (a look at any time keeps its error rate);
the fixed-horizon test's p-value and interval are shown beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from analysis.paired import PairedMeans, PairedProportions, mcnemar_exact, paired_t_test
from analysis.paired_sequential import SequentialPaired, paired_sequential
from analysis.paired_verdict import Better, metric_verdict, overall_verdict
from control_plane.errors import NotFound
from control_plane.store.tables import OutcomeRow, RunRow, ShadowRow
from control_plane.workflows.lookup import row_id, workflow_row

__all__ = ["MetricComparison", "ShadowComparison", "compare_shadow"]

ENDED = ("succeeded", "failed", "budget_exceeded")
ALPHA = 0.05
_CHUNK = 500  # run ids per IN list: well under every driver's bound on parameters


class MetricComparison(BaseModel):
    model_config = ConfigDict(frozen=True)
    metric: str
    better: Literal["higher", "lower"]
    pairs: int
    served_mean: float | None
    shadow_mean: float | None
    mean_difference: float | None = Field(description="shadow − served, averaged over pairs")
    p_value: float | None = Field(description="two-sided; none when no test applies")
    ci_low: float | None = None
    ci_high: float | None = None
    method: str
    reason: str = Field(description="`ok`, or why no test: no_pairs, too_few_pairs, …")
    sequential_p_value: float | None = Field(
        default=None, description="always valid (any look): what the verdict rests on"
    )
    sequential_ci_low: float | None = None
    sequential_ci_high: float | None = None
    verdict: str


class ShadowComparison(BaseModel):
    model_config = ConfigDict(frozen=True)
    workflow: str
    label: str
    shadow_version: str
    served_versions: list[str] = Field(description="the versions that answered the pairs")
    pairs: int
    alpha: float = ALPHA
    metrics: list[MetricComparison]
    verdict: str


Result = PairedMeans | PairedProportions


def _sequential(
    result: Result, served: list[float], shadow: list[float]
) -> tuple[Result, SequentialPaired]:
    """``result`` with the always-valid p-value in place of the fixed one (when both tests
    apply), and the sequential test."""
    seq = paired_sequential(served, shadow, alpha=ALPHA)
    if result.reason == "ok" and seq.reason == "ok":
        return replace(result, p_value=seq.p_value), seq
    return result, seq


def _metric(
    name: str, result: Result, better: Better, seq: SequentialPaired, judged: Result
) -> MetricComparison:
    ci: tuple[float | None, float | None] = (None, None)
    if isinstance(result, PairedProportions):
        means = (result.served_rate, result.shadow_rate)
    else:
        means, ci = (result.served_mean, result.shadow_mean), (result.ci_low, result.ci_high)
    return MetricComparison(
        metric=name,
        better=better,
        pairs=result.n,
        served_mean=means[0],
        shadow_mean=means[1],
        mean_difference=result.mean_difference,
        p_value=result.p_value,
        ci_low=ci[0],
        ci_high=ci[1],
        method=result.method,
        reason=result.reason,
        sequential_p_value=seq.p_value,
        sequential_ci_low=seq.ci_low,
        sequential_ci_high=seq.ci_high,
        verdict=metric_verdict(name, judged, better=better, alpha=ALPHA),
    )


def _outcomes(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = defaultdict(dict)
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start : start + _CHUNK]
        rows = session.exec(select(OutcomeRow).where(col(OutcomeRow.run_id).in_(chunk))).all()
        for row in rows:
            found[row.run_id][row.metric] = row.value
    return found


def _outcome_metrics(
    pairs: Iterable[tuple[str, str]], outcomes: dict[str, dict[str, float]]
) -> dict[str, tuple[list[float], list[float]]]:
    paired: dict[str, tuple[list[float], list[float]]] = {}
    for served_id, shadow_id in pairs:
        mine, theirs = outcomes.get(served_id, {}), outcomes.get(shadow_id, {})
        for metric in mine.keys() & theirs.keys():
            a, b = paired.setdefault(metric, ([], []))
            a.append(mine[metric])
            b.append(theirs[metric])
    return paired


class _Pair(NamedTuple):
    served_id: str
    served_version: str
    served_status: str
    served_latency: float | None
    served_cost: float
    shadow_id: str
    shadow_status: str
    shadow_latency: float | None
    shadow_cost: float


def _pairs(session: Session, *, workflow: str, label: str, version: str, limit: int) -> list[_Pair]:
    """The newest ``limit`` ended pairs, oldest first, one per served run."""
    served, shadow = aliased(RunRow), aliased(RunRow)
    query = (
        sa_select(
            *(col(c) for c in (served.id, served.version, served.status, served.latency_s)),
            col(served.cost_usd),
            *(col(c) for c in (shadow.id, shadow.status, shadow.latency_s, shadow.cost_usd)),
        )
        .join(served, col(served.id) == col(shadow.shadow_of))
        .where(
            col(shadow.workflow) == workflow,
            col(shadow.label) == label,
            col(shadow.version) == version,
            col(shadow.status).in_(ENDED),
            col(served.status).in_(ENDED),
        )
        .order_by(col(shadow.created_at).desc())
        .limit(limit)
    )
    kept: dict[str, _Pair] = {}
    for row in reversed(session.execute(query).all()):
        pair = _Pair(*row)
        kept.setdefault(pair.served_id, pair)  # a request mirrored twice: its first shadow
    return list(kept.values())


def compare_shadow(
    session: Session,
    *,
    workflow: str,
    label: str,
    version: str | None = None,
    limit: int = 10_000,
) -> ShadowComparison:
    """The newest ``limit`` pairs of ``label``'s served runs and their shadow runs of
    ``version`` (default: the label's shadow candidate, running or stopped), compared."""
    wf = workflow_row(session, workflow)
    if version is None:
        row = session.exec(
            select(ShadowRow).where(ShadowRow.workflow_id == row_id(wf), ShadowRow.label == label)
        ).first()
        if row is None:
            raise NotFound(f"{workflow}:{label} has never been shadowed; name a `version`")
        version = row.version
    kept = _pairs(session, workflow=workflow, label=label, version=version, limit=limit)
    ok = [
        (float(p.served_status == "succeeded"), float(p.shadow_status == "succeeded")) for p in kept
    ]
    timed = [(p.served_latency, p.shadow_latency) for p in kept]
    latency = [(a, b) for a, b in timed if a is not None and b is not None]
    cost = [(p.served_cost, p.shadow_cost) for p in kept]
    series: list[tuple[str, Better, list[tuple[float, float]]]] = [
        ("success", "higher", ok),
        ("latency_s", "lower", latency),
        ("cost_usd", "lower", cost),
    ]
    pairs = [(p.served_id, p.shadow_id) for p in kept]
    outcomes = _outcomes(session, [run_id for pair in pairs for run_id in pair])
    for metric, (a, b) in sorted(_outcome_metrics(pairs, outcomes).items()):
        # An outcome is read as "more is better", as experiments' outcomes default to.
        series.append((metric, "higher", list(zip(a, b, strict=True))))
    metrics: list[MetricComparison] = []
    judged: list[tuple[str, Result, Better]] = []
    for name, better, values in series:
        served_values, shadow_values = [a for a, _ in values], [b for _, b in values]
        result: Result
        if name == "success":
            result = mcnemar_exact([a > 0 for a in served_values], [b > 0 for b in shadow_values])
        else:
            result = paired_t_test(served_values, shadow_values, alpha=ALPHA)
        verdict_on, seq = _sequential(result, served_values, shadow_values)
        metrics.append(_metric(name, result, better, seq, verdict_on))
        judged.append((name, verdict_on, better))
    return ShadowComparison(
        workflow=workflow,
        label=label,
        shadow_version=version,
        served_versions=sorted({p.served_version for p in kept}),
        pairs=len(kept),
        metrics=metrics,
        verdict=overall_verdict(judged, alpha=ALPHA),
    )
