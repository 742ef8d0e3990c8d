"""The experiment's verdict: promote, roll back, continue or halt, with reasons a person reads.

``decide`` applies the rules in this order, each with a stable code next to its words
(``analysis.outcome.ReasonCode``):

1. the spec or the data's types cannot be analysed (``invalid_spec``) → **halt**;
2. sample ratio mismatch (``srm``: chi-square, or the always-valid test with
   ``srm_method="sequential"``; on users when every arm reports them, else on runs), or an arm
   or a required metric without data (``no_data``, ``metric_no_data``) → **halt**: the numbers
   cannot be trusted, or do not exist;
3. an arm under ``min_runs_per_arm`` (``below_min_runs``) → **continue**, saying how many more;
4. a guardrail worse than the baseline beyond its margin, significant one-sided with the chosen
   method (``guardrail_regression``) → **rollback**. Guardrails with margin 0 are tested
   together: their one-sided p-values (every candidate's) are Holm-adjusted as one family and
   one regresses when its adjusted p is below alpha (``guardrail_correction``, on by default).
   Any one of them rolls the experiment back, so uncorrected, k margin-0 guardrails each at
   alpha roll back an A/A experiment with probability up to 1 − (1 − alpha)^k (three
   independent ones: 14.3 % at one fixed-horizon look); Holm bounds that family-wise rate at
   alpha for any dependence between the metrics, and, on always-valid p-values, over every
   look. A guardrail with margin > 0 is a one-sided non-inferiority test at alpha, uncorrected
   as before: its null is "worse by at least the margin", a stated tolerance, not "no change";
5. the primary metric significantly worse, two-sided at alpha (``primary_worse``) → **rollback**;
6. the primary metric significantly better after the spec's correction (Holm by default, or
   Benjamini–Hochberg) across candidates and secondary metrics, every guardrail evaluable and
   none regressed (``primary_better``) → **promote** the best such candidate (largest effect);
7. otherwise **continue** (``inconclusive``, ``primary_not_evaluable``,
   ``guardrail_not_evaluable``).

So missing or insufficient data never promotes and never rolls back; nor does a proportion
with fewer expected events than ``min_events``. The correction guards promotion (a
false win ships a worse pipeline); a worse primary metric and margin > 0 guardrails are acted on
unadjusted, because rolling back is the cheap and safe direction; margin-0 guardrails are
Holm-corrected among themselves (above) because, several at once, they made false rollbacks
routine. With ``method="sequential"`` (the default) the
tests are confidence sequences and ``decide`` may be called after every batch; ``"fixed"`` is
valid only when called once, at the sample size planned with ``analysis.power``.

Comparisons are computed whatever the action, so an interim view always has its numbers. The
cost does not depend on the runs behind the statistics (about 0.1 ms for two arms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from analysis.comparison import Alternative, Comparison, Scale
from analysis.horizon import PLANNED_POWER, horizon
from analysis.multiple import adjust, holm
from analysis.outcome import Action, Decision, MetricResult, Reason, ReasonCode, Role
from analysis.rules import apply_rules, good_sign, guardrail_holds, srm_message
from analysis.sequential import sequential_test
from analysis.significance import fixed_test
from analysis.spec import ExperimentSpec, Guardrail, MetricSpec, problems
from analysis.srm import SRMResult, srm_check
from analysis.srm_sequential import sequential_srm_steps
from analysis.stats import ArmData, MeanStats, MetricStats, ProportionStats
from analysis.units import RateOverUnits

__all__ = [
    "Action",
    "Decision",
    "MetricResult",
    "Reason",
    "ReasonCode",
    "Role",
    "SRMStep",
    "decide",
]

SRMStep = tuple[Mapping[str, int], Mapping[str, float]]
"""One finished ramp step for the sequential sample ratio check: (counts per arm, shares)."""

_KIND: dict[str, type[MeanStats] | type[ProportionStats]] = {
    "mean": MeanStats,
    "proportion": ProportionStats,
}


# A proportion over users who ran more than once is a ratio of sums, carried as the mean and
# spread of its linearised values (``analysis.units.RateOverUnits``).
_ACCEPTED: dict[str, tuple[type[MeanStats] | type[ProportionStats], ...]] = {
    "mean": (MeanStats,),
    "proportion": (ProportionStats, RateOverUnits),
}


def _type_problems(spec: ExperimentSpec, data: Mapping[str, ArmData]) -> list[str]:
    found = []
    for arm in spec.arms:
        metrics = data[arm.name].metrics if arm.name in data else {}
        for metric in spec.metrics:
            stats = metrics.get(metric.name)
            expected = _KIND.get(metric.kind)
            accepted = _ACCEPTED.get(metric.kind, ())
            if stats is not None and expected is not None and not isinstance(stats, accepted):
                found.append(
                    f"{arm.name}'s {metric.name} is {type(stats).__name__}, expected "
                    f"{expected.__name__} for a {metric.kind} metric"
                )
    return found


def _stats(data: Mapping[str, ArmData], arm: str, metric: MetricSpec) -> MetricStats:
    """The arm's statistics of ``metric``; empty ones when the store reported none."""
    found = data[arm].metrics.get(metric.name) if arm in data else None
    return found if found is not None else _KIND[metric.kind]()


def _test(
    spec: ExperimentSpec,
    b: MetricStats,
    c: MetricStats,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    scale: Scale = "absolute",
) -> Comparison:
    if spec.method == "fixed":
        return fixed_test(
            b,
            c,
            alpha=spec.alpha,
            alternative=alternative,
            null=null,
            scale=scale,
            min_events=spec.min_events,
        )
    return sequential_test(
        b,
        c,
        alpha=spec.alpha,
        alternative=alternative,
        null=null,
        scale=scale,
        tuning_runs=spec.tuning_runs,
        min_events=spec.min_events,
    )


def _guardrail_test(
    spec: ExperimentSpec, g: Guardrail, b: MetricStats, c: MetricStats
) -> Comparison:
    """H1: worse than the baseline by more than the margin (one-sided, on the margin's scale:
    for a lower-is-better metric with a 5 % relative margin, H1 is c/b − 1 > 0.05)."""
    worse: Alternative = "less" if g.direction == "increase" else "greater"
    scale: Scale = "relative" if g.margin_relative else "absolute"
    return _test(spec, b, c, worse, -good_sign(g) * g.margin, scale)


def _halts(spec: ExperimentSpec, data: Mapping[str, ArmData]) -> list[Reason]:
    """No runs in an arm, or runs without a single observation of a required metric."""
    halts = []
    for arm in spec.arms:
        runs = data[arm.name].runs if arm.name in data else 0
        if runs == 0:
            message = f"{arm.name} has no runs: no data to compare; halt."
            halts.append(Reason("no_data", message, arm.name))
            continue
        for metric in (spec.primary, *spec.guardrails):
            if _stats(data, arm.name, metric).n == 0:
                message = f"{arm.name} has {runs:,} runs but no {metric.title} data; halt."
                halts.append(Reason("metric_no_data", message, arm.name, metric.name))
    return halts


def _compare_all(spec: ExperimentSpec, data: Mapping[str, ArmData]) -> list[MetricResult]:
    """Every metric in every arm; candidates compared with the baseline, the spec's correction
    applied to the primary and secondary comparisons together."""
    base = spec.baseline.name
    results: list[MetricResult] = []
    family: list[int] = []  # indices in ``results`` of the corrected family
    guards: list[int] = []  # indices of margin-0 guardrail comparisons (Holm among themselves)
    roles: list[tuple[MetricSpec, Role]] = [(spec.primary, "primary")]
    roles += [(g, "guardrail") for g in spec.guardrails]
    roles += [(m, "secondary") for m in spec.secondary]
    for metric, role in roles:
        b = _stats(data, base, metric)
        results.append(MetricResult(base, metric.name, role, b.n, b.mean))
        for arm in spec.candidates:
            c = _stats(data, arm.name, metric)
            if isinstance(metric, Guardrail):
                comp = _guardrail_test(spec, metric, b, c)
                regressed = guardrail_holds(metric, comp) is False
                if spec.guardrail_correction and metric.margin == 0:
                    guards.append(len(results))
                results.append(
                    MetricResult(arm.name, metric.name, role, c.n, c.mean, comp, None, regressed)
                )
            else:
                family.append(len(results))
                comp = _test(spec, b, c)
                results.append(MetricResult(arm.name, metric.name, role, c.n, c.mean, comp))
    p_values = [results[i].p_value for i in family]
    adjusted = adjust(p_values, spec.alpha, spec.correction)
    for i, adj, reject in zip(family, adjusted.adjusted, adjusted.reject, strict=True):
        r = results[i]
        results[i] = MetricResult(r.arm, r.metric, r.role, r.n, r.mean, r.comparison, adj, reject)
    # Margin-0 guardrails: Holm across them (and the candidates), one-sided p-values; a
    # regression needs the raw test significant (an evaluable comparison) and the adjusted p too.
    guarded = holm([results[i].p_value for i in guards], spec.alpha)
    for i, adj, reject in zip(guards, guarded.adjusted, guarded.reject, strict=True):
        r = results[i]
        regressed = r.significant and reject
        results[i] = MetricResult(
            r.arm, r.metric, r.role, r.n, r.mean, r.comparison, adj, regressed
        )
    return results


def _srm(
    spec: ExperimentSpec, data: Mapping[str, ArmData], earlier_steps: Sequence[SRMStep]
) -> tuple[SRMResult, str]:
    """The sample ratio check the spec names, on users when every arm reports them (assignment
    is by user), else on runs; and which of the two it counted."""
    shares = {arm.name: arm.share for arm in spec.arms}
    by_user = bool(data) and all(arm_data.users is not None for arm_data in data.values())
    counts = {
        arm: (arm_data.users or 0) if by_user else arm_data.runs for arm, arm_data in data.items()
    }
    unit = "users" if by_user else "runs"
    if spec.srm_method == "sequential":
        steps = [*earlier_steps, (counts, shares)]
        return sequential_srm_steps(steps, threshold=spec.srm_threshold), unit
    return srm_check(counts, shares, threshold=spec.srm_threshold), unit


def decide(
    spec: ExperimentSpec, data: Mapping[str, ArmData], *, earlier_steps: Sequence[SRMStep] = ()
) -> Decision:
    """The verdict on ``spec`` given each arm's statistics, ``data[arm_name]`` (arms missing
    from ``data`` have no runs; runs in arms missing from ``spec`` are a sample ratio mismatch).
    See the module docstring for the rules. Never raises on degenerate data; a spec that cannot
    be analysed halts with ``invalid_spec``.

    ``earlier_steps`` are the finished ramp steps' final (counts, shares), oldest first, counted
    as ``data`` counts (users or runs): with ``srm_method="sequential"`` the check multiplies
    their Bayes factors with the current step's, one always-valid test for the whole ramp
    (``analysis.srm_sequential.sequential_srm_steps``); the chi-square check ignores them."""
    found = problems(spec) or _type_problems(spec, data)
    if found:
        reasons = tuple(Reason("invalid_spec", f"Cannot analyse: {p}.") for p in found)
        return Decision("halt", reasons, (), None, spec.method)
    srm, unit = _srm(spec, data, earlier_steps)
    halts = [Reason("srm", srm_message(srm, unit))] if srm.flagged else []
    halts += _halts(spec, data)
    results = _compare_all(spec, data)
    runs = {arm.name: data[arm.name].runs if arm.name in data else 0 for arm in spec.arms}
    primary_baseline = _stats(data, spec.baseline.name, spec.primary)
    action, reasons, winner = apply_rules(spec, runs, results, halts, primary_baseline)
    final = False
    if spec.method == "fixed" and action != "halt":
        action, reasons, winner, final = _at_horizon(spec, data, action, reasons, winner)
    return Decision(action, reasons, tuple(results), srm, spec.method, winner, final)


def _at_horizon(
    spec: ExperimentSpec,
    data: Mapping[str, ArmData],
    action: Action,
    reasons: tuple[Reason, ...],
    winner: str | None,
) -> tuple[Action, tuple[Reason, ...], str | None, bool]:
    """A fixed-horizon test acts only at its planned sample size (``analysis.horizon``): before
    it, what it would do is reported as a reason, never done; at it, its verdict is final,
    "no difference found" included."""
    planned = horizon(spec, data)
    if planned.reached:
        if action == "continue":
            message = (
                f"the fixed-horizon test reached its planned {planned.runs_per_arm:,} per arm "
                "without a significant difference: it is read once, so the experiment ends "
                "here, inconclusive"
            )
            reasons = (Reason("at_horizon", message), *reasons)
        return action, reasons, winner, True
    if action == "continue":
        return action, reasons, winner, False
    if planned.runs_per_arm is None:
        message = (
            f"a fixed-horizon test would {action} now, but its sample size cannot be planned "
            "yet (no baseline data to plan with); continue"
        )
    else:
        message = (
            f"a fixed-horizon test acts only at its planned {planned.runs_per_arm:,} per "
            f"arm (power {PLANNED_POWER:.0%} for the mde at alpha {spec.alpha}); it would "
            f"{action} now, which is not yet evidence; continue"
        )
    return "continue", (Reason("before_horizon", message), *reasons), None, False
