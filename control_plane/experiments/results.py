"""An experiment's results: the stored sufficient statistics handed to ``analysis.decide``.

Users are the unit: every metric is analysed over users (``analysis.units``: a per-run metric
is a ratio over users, its variance by the delta method), and the sample ratio check counts the
users of the current step against its shares (earlier steps had other shares). The store keeps
statistics per ramp step; each metric is estimated within each step and the steps combined
with Cochran–Mantel–Haenszel weights (``analysis.strata``), so a drifting baseline and changing
shares cannot manufacture an effect. With ``cuped: true`` each step's metrics are first
adjusted by the users' pre-exposure values (``analysis.cuped``) and each candidate's rows show
the variance this removed. Experiments started before the
unit tables existed have only run-level sums, and are analysed over runs as they were.

The response is the analysis, flattened for JSON: per arm and metric
n, mean, effect with its interval, p-values, and the decision with its reasons.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from analysis.cuped import VarianceReduction, cuped_arm_data
from analysis.decision import Decision, SRMStep, decide
from analysis.spec import ArmSpec, ExperimentSpec, Guardrail, MetricSpec, PrimaryMetric
from analysis.stats import ArmData, MeanStats, MetricStats, ProportionStats
from analysis.strata import arm_data_over_steps
from analysis.units import UnitStats
from control_plane.experiments.schemas import ExperimentCreate, ExperimentPublic
from control_plane.experiments.service import get_experiment
from control_plane.experiments.stats import stats_of, unit_stats_of
from control_plane.store.tables import ArmStatRow, ArmUnitStatRow

__all__ = [
    "Analysis",
    "ExperimentResults",
    "Reductions",
    "RunCounts",
    "analyse",
    "cuped_data_of",
    "data_of",
    "results",
    "spec_of",
    "to_public",
    "unit_data_of",
]

StepEntries = dict[str, tuple[str, UnitStats]]
Reductions = dict[tuple[str, str], VarianceReduction]
"""(candidate, metric) → its variance reduction under CUPED."""

_LABELS = {"success": "success rate", "latency_s": "latency", "cost_usd": "cost per run"}


def _share(arm: dict[str, object]) -> float:
    share = arm["share"]
    assert isinstance(share, int | float)  # stored by ExperimentCreate.shares_at
    return float(share)


def spec_of(experiment: ExperimentPublic) -> ExperimentSpec:
    config: ExperimentCreate = experiment.config
    # The shares the data was collected under: a rolled-back experiment's arms read 0 %, but
    # its last step's traffic was split by the step's shares (else every ended experiment
    # would read as a sample ratio mismatch).
    shares = (
        experiment.arms if experiment.status == "running" else config.shares_at(experiment.step)
    )
    arms = [ArmSpec(name=str(a["version"]), share=_share(a)) for a in shares]
    candidate_share = sum(arm.share for arm in arms)
    primary = config.primary
    assert primary.kind is not None
    return ExperimentSpec(
        baseline=ArmSpec(name=experiment.baseline, share=max(0.0, 1.0 - candidate_share)),
        candidates=tuple(arms),
        primary=PrimaryMetric(
            name=primary.name,
            kind=primary.kind,
            direction=primary.direction,
            label=_LABELS.get(primary.name),
            mde=primary.mde,
            mde_relative=primary.relative,
        ),
        guardrails=tuple(
            Guardrail(
                name=g.name,
                kind=g.kind or "mean",
                direction=g.direction,
                label=_LABELS.get(g.name),
                margin=g.margin,
                margin_relative=g.relative,
            )
            for g in config.guardrails
        ),
        secondary=tuple(
            MetricSpec(
                name=m.name,
                kind=m.kind or "mean",
                direction=m.direction,
                label=_LABELS.get(m.name),
            )
            for m in config.secondary
        ),
        correction=config.correction,
        guardrail_correction=config.guardrail_correction,
        alpha=config.alpha,
        min_runs_per_arm=config.min_runs_per_arm,
        # Looked at every evaluation: an always-valid check (Lindon & Malek 2022), so looking
        # every 30 s does not raise false halts as a repeated chi-square does.
        srm_method="sequential",
        # A person who resumed past a sample ratio mismatch accepted the split: the check still
        # reports its p-value, but no longer stops the rules (a rollback must stay possible).
        srm_threshold=sys.float_info.min if "srm" in experiment.acknowledged else 0.001,
        method=config.method,
        tuning_runs=config.tuning_runs,
    )


def data_of(rows: Sequence[ArmStatRow], *, arms: Sequence[str], step: int) -> dict[str, ArmData]:
    """Per arm: the runs of the current ``step`` (every run adds one ``success`` observation)
    and each metric pooled over all steps."""
    pooled: dict[str, dict[str, MetricStats]] = defaultdict(dict)
    runs: dict[str, int] = dict.fromkeys(arms, 0)
    for row in rows:
        stats: MetricStats
        if row.kind == "proportion":
            stats = ProportionStats(n=row.n, successes=round(row.total))
        else:
            stats = MeanStats(n=row.n, total=row.total, total_sq=row.total_sq)
        known = pooled[row.arm].get(row.metric)
        pooled[row.arm][row.metric] = known.merge(stats) if known is not None else stats  # type: ignore[arg-type]
        if row.metric == "success" and row.step == step:
            runs[row.arm] = runs.get(row.arm, 0) + row.n
    return {arm: ArmData(runs=runs.get(arm, 0), metrics=dict(pooled.get(arm, {}))) for arm in
            {*arms, *pooled}}  # fmt: skip


def _steps(rows: Sequence[ArmUnitStatRow]) -> dict[int, dict[str, StepEntries]]:
    steps: dict[int, dict[str, StepEntries]] = {}
    for row in rows:
        stats = UnitStats(row.units, row.sum_n, row.sum_s, row.sum_nn, row.sum_ss, row.sum_sn,
                          row.sum_x, row.sum_xx, row.sum_xs, row.sum_xn, row.covered)  # fmt: skip
        steps.setdefault(row.step, {}).setdefault(row.arm, {})[row.metric] = (row.kind, stats)
    return steps


def unit_data_of(
    rows: Sequence[ArmUnitStatRow], *, arms: Sequence[str], step: int
) -> dict[str, ArmData]:
    """Per arm: the users of the current ``step`` and each metric over users, estimated within
    each ramp step and combined across steps (``analysis.strata``). ``arms[0]`` is the
    baseline."""
    return arm_data_over_steps(_steps(rows), baseline=arms[0], arms=arms, step=step)


def cuped_data_of(
    rows: Sequence[ArmUnitStatRow], *, arms: Sequence[str], step: int
) -> tuple[dict[str, ArmData], Reductions]:
    """``unit_data_of`` with each step's metrics CUPED-adjusted (``analysis.cuped``), and each
    candidate's variance reduction per metric."""
    return cuped_arm_data(_steps(rows), baseline=arms[0], arms=arms, step=step)


def earlier_steps_of(rows: Sequence[ArmUnitStatRow], experiment: ExperimentPublic) -> list[SRMStep]:
    """Each finished ramp step's users per arm and shares, oldest first: the sequential sample
    ratio check multiplies their evidence with the current step's (one test for the ramp)."""
    config: ExperimentCreate = experiment.config
    steps: list[SRMStep] = []
    for step in range(experiment.step):
        arms = config.shares_at(step)
        shares = {str(a["version"]): _share(a) for a in arms}
        shares[experiment.baseline] = max(0.0, 1.0 - sum(shares.values()))
        counts = dict.fromkeys(shares, 0)
        for row in rows:
            if row.metric == "success" and row.step == step and row.arm in counts:
                counts[row.arm] += row.units
        steps.append((counts, shares))
    return steps


RunCounts = dict[tuple[str, str], int]
"""(arm, metric) → the runs (observations) behind it, every ramp step together."""


class Analysis(NamedTuple):
    """An experiment, the analysis' decision on it, with CUPED on each candidate's variance
    reduction per metric (``None``: CUPED off), and the runs behind each arm's metric."""

    experiment: ExperimentPublic
    decision: Decision
    cuped: Reductions | None = None
    runs: RunCounts | None = None


def analyse(session: Session, *, experiment_id: int) -> Analysis:
    """The decision the evaluator acts on and the results show: one code path for both."""
    experiment = get_experiment(session, experiment_id=experiment_id)
    arms = [experiment.baseline, *(str(a["version"]) for a in experiment.arms)]
    unit_rows = unit_stats_of(session, experiment_id)
    reductions: Reductions | None = None
    runs: RunCounts = defaultdict(int)
    if unit_rows or not (run_rows := stats_of(session, experiment_id)):
        for unit_row in unit_rows:  # users are the unit; each user's N counts their runs
            runs[(unit_row.arm, unit_row.metric)] += round(unit_row.sum_n)
        if experiment.config.cuped:
            data, reductions = cuped_data_of(unit_rows, arms=arms, step=experiment.step)
        else:
            data = unit_data_of(unit_rows, arms=arms, step=experiment.step)
        earlier = earlier_steps_of(unit_rows, experiment)
    else:
        data, earlier = data_of(run_rows, arms=arms, step=experiment.step), []
        for run_row in run_rows:
            runs[(run_row.arm, run_row.metric)] += run_row.n
    decision = decide(spec_of(experiment), data, earlier_steps=earlier)
    return Analysis(experiment, decision, reductions, dict(runs))


class ExperimentResults(BaseModel):
    model_config = ConfigDict(frozen=True)
    experiment: ExperimentPublic
    action: str = Field(description="promote | rollback | continue | halt")
    winner: str | None = None
    reasons: list[dict[str, Any]] = Field(description="code, message, arm, metric")
    method: str
    srm: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = Field(
        description="per arm and metric: n (users), runs, mean, effect with interval, p-values"
    )


def _cuped(found: VarianceReduction | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        "variance_reduction": found.variance_reduction,
        "theta": found.theta,
        "reason": found.reason,
        "units": found.units,
        "covered_units": found.covered,
    }


def _comparison(result: Any, cuped: Reductions | None, runs: RunCounts | None) -> dict[str, Any]:
    c = result.comparison
    row: dict[str, Any] = {
        "arm": result.arm,
        "metric": result.metric,
        "role": result.role,
        "n": result.n,
        # n counts the units (users); the runs are what they did
        "runs": runs.get((result.arm, result.metric)) if runs is not None else None,
        "mean": result.mean,
        "adjusted_p": result.adjusted_p,
        "significant": result.significant,
    }
    if c is not None:
        row.update(
            effect=c.effect,
            ci_low=c.ci_low,
            ci_high=c.ci_high,
            relative_effect=c.relative_effect,
            relative_ci_low=c.relative_ci_low,
            relative_ci_high=c.relative_ci_high,
            p_value=c.p_value,
            method=c.method,
            reason=c.reason,
        )
    if cuped is not None and c is not None:
        # CUPED: the means and effect above are adjusted; how much variance that removed
        row["cuped"] = _cuped(cuped.get((result.arm, result.metric)))
    return row


def to_public(
    experiment: ExperimentPublic,
    decision: Decision,
    cuped: Reductions | None = None,
    runs: RunCounts | None = None,
) -> ExperimentResults:
    srm = decision.srm
    return ExperimentResults(
        experiment=experiment,
        action=decision.action,
        winner=decision.winner,
        reasons=[
            {"code": r.code, "message": r.message, "arm": r.arm, "metric": r.metric}
            for r in decision.reasons
        ],
        method=decision.method,
        srm=None
        if srm is None
        else {
            "p_value": srm.p_value,
            "flagged": srm.flagged,
            "reason": srm.reason,
            "observed": dict(srm.observed),
        },
        metrics=[_comparison(r, cuped, runs) for r in decision.results],
    )


def results(session: Session, *, experiment_id: int) -> ExperimentResults:
    return to_public(*analyse(session, experiment_id=experiment_id))
