"""The rule ladder of ``decide``: computed comparisons in, an action with its reasons out.

The order is the policy (see ``analysis.decision``): halt, then too few runs, then rollback
(guardrails first, then the primary metric), then promote, else continue. Each rule builds its
own sentence from the numbers it acted on, so a person can check the reasoning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from analysis.comparison import Comparison
from analysis.outcome import Action, MetricResult, Reason
from analysis.power import runs_for_mean, runs_for_proportion
from analysis.spec import ExperimentSpec, Guardrail, MetricSpec
from analysis.srm import SRMResult
from analysis.stats import MetricStats, ProportionStats
from analysis.wording import count, effect_sentence, interval_phrase, margin_phrase, number

__all__ = ["apply_rules", "good_sign", "guardrail_holds", "srm_message"]


_CORRECTED = {"holm": "Holm", "benjamini_hochberg": "Benjamini–Hochberg"}


def good_sign(metric: MetricSpec) -> float:
    """+1 when an increase is good, −1 when a decrease is."""
    return 1.0 if metric.direction == "increase" else -1.0


def _gain(metric: MetricSpec, c: Comparison | None) -> float:
    """The effect in the good direction (positive is better)."""
    return 0.0 if c is None or c.effect is None else c.effect * good_sign(metric)


def guardrail_holds(g: Guardrail, c: Comparison) -> bool | None:
    """True: no regression beyond the margin; False: one, significant; None: cannot tell."""
    if c.ok:
        return not c.significant
    # No spread, or too few events (or effective units: users who ran many times) to test, and
    # not worse: no test could find a regression (the one-sided "worse" statistic would point
    # the other way). Worse: cannot tell.
    untestable = c.reason in ("zero_variance", "too_few_events", "too_few_units")
    if untestable and c.effect is not None and _gain(g, c) >= 0:
        return True
    return None


def _p(p: float | None) -> str:
    """ "p = 0.031", "p < 0.001"."""
    if p is None:
        return "p n/a"
    return f"p = {p:.2g}" if p >= 0.001 else "p < 0.001"


def _holm_guard(adjusted_p: float | None) -> str:
    """How a margin-0 guardrail's regression was judged (Holm across those guardrails)."""
    if adjusted_p is None:
        return ""
    return (
        f" ({_p(adjusted_p).replace('p', 'Holm-adjusted p', 1)} across the zero-margin guardrails)"
    )


def _about(n: int) -> str:
    """A planning figure to three significant digits: 13,493 → "13,500"."""
    digits = max(0, len(str(n)) - 3)
    return count(round(n, -digits))


def _words(code: str) -> str:
    return code.replace("_", " ")


def srm_message(srm: SRMResult, unit: str = "runs") -> str:
    """The halt's sentence; ``unit`` is what was counted ("runs" or "users")."""
    observed = ", ".join(f"{arm} {count(n)}" for arm, n in srm.observed.items())
    if srm.reason == "zero_share_with_runs":
        arms = ", ".join(srm.zero_share_arms)
        return (
            f"Sample ratio mismatch: {arms} received {unit} but has no configured share "
            f"({unit}: {observed}); assignment is broken: halt and investigate."
        )
    expected = ", ".join(number(e, 0) for e in srm.expected.values())
    p_text = "n/a" if srm.p_value is None else f"= {srm.p_value:.2g}"
    if srm.p_value is not None and srm.p_value < 1e-16:
        p_text = "< 1e-16"  # beyond double precision; "0" would read as impossible
    test = "chi-square p" if srm.method == "chi_square" else "always-valid p"
    return (
        f"Sample ratio mismatch: {unit} {observed} against {expected} expected from the "
        f"configured shares ({test} {p_text}, below {srm.threshold:g}); assignment "
        "or logging is broken: halt and investigate."
    )


def _hint(spec: ExperimentSpec, baseline: MetricStats, candidate: str, share: float) -> str:
    """How many runs a fixed-horizon test needs at the MDE, from the baseline's own spread."""
    p = spec.primary
    mde = abs(p.mde) * good_sign(p)
    pct = f"{abs(p.mde) * 100:.6g}"
    if isinstance(baseline, ProportionStats):
        size = runs_for_proportion(
            baseline_rate=baseline.mean or 0.0,
            mde=mde,
            relative=p.mde_relative,
            alpha=spec.alpha,
            candidate_share=share,
        )
        mde_text = f"{pct} %" if p.mde_relative else f"{pct}-point"
    else:
        size = runs_for_mean(
            baseline_mean=baseline.mean or 0.0,
            baseline_std=baseline.std or 0.0,
            mde=mde,
            relative=p.mde_relative,
            alpha=spec.alpha,
            candidate_share=share,
        )
        mde_text = f"{pct} %" if p.mde_relative else f"{abs(p.mde):g}"
    if size.baseline_runs is None or size.candidate_runs is None:
        return ""
    if size.baseline_runs == size.candidate_runs:
        runs = f"about {_about(size.candidate_runs)} runs per arm"
    else:
        runs = (
            f"about {_about(size.baseline_runs)} runs on {spec.baseline.name} and "
            f"{_about(size.candidate_runs)} on {candidate}"
        )
    return f"; at the {mde_text} MDE a fixed-horizon test needs {runs} (80 % power)"


def apply_rules(
    spec: ExperimentSpec,
    runs: Mapping[str, int],
    results: Sequence[MetricResult],
    halts: Sequence[Reason],
    primary_baseline: MetricStats,
) -> tuple[Action, tuple[Reason, ...], str | None]:
    """The action, its reasons and the winner (when promoting)."""
    if halts:
        return "halt", tuple(halts), None
    low = spec.min_runs_per_arm
    short = [
        Reason(
            "below_min_runs",
            f"{arm.name} has {count(runs[arm.name])} runs: {count(low - runs[arm.name])} more "
            f"before any decision (minimum {count(low)} per arm).",
            arm.name,
        )
        for arm in spec.arms
        if runs[arm.name] < low
    ]
    if short:
        return "continue", tuple(short), None
    base = spec.baseline.name
    metrics = {m.name: m for m in spec.metrics}
    compared = [(r, metrics[r.metric], r.comparison) for r in results if r.comparison is not None]
    rollbacks = [
        Reason(
            "guardrail_regression",
            f"{effect_sentence(m, c, r.arm, base, interval_phrase(m, c))}, beyond "
            f"{margin_phrase(m)}{_holm_guard(r.adjusted_p)}: roll back.",
            r.arm,
            r.metric,
        )
        for r, m, c in compared
        if r.role == "guardrail" and isinstance(m, Guardrail) and r.significant
    ]
    rollbacks += [
        Reason(
            "primary_worse",
            f"{effect_sentence(m, c, r.arm, base, f'{interval_phrase(m, c)}; {_p(c.p_value)}')}"
            ": significantly worse: roll back.",
            r.arm,
            r.metric,
        )
        for r, m, c in compared
        if r.role == "primary" and c.ok and c.significant and _gain(m, c) < 0
    ]
    if rollbacks:
        return "rollback", tuple(rollbacks), None
    blocked: dict[str, list[Reason]] = {}
    for r, m, c in compared:
        if r.role == "guardrail" and isinstance(m, Guardrail) and guardrail_holds(m, c) is None:
            message = (
                f"{r.arm}'s {m.title} cannot be checked against {margin_phrase(m)} "
                f"({_words(c.reason)}): no promotion while it cannot."
            )
            blocked.setdefault(r.arm, []).append(
                Reason("guardrail_not_evaluable", message, r.arm, r.metric)
            )
    primary = [(r, c) for r, m, c in compared if r.role == "primary"]
    winners = [(r, c) for r, c in primary if r.significant and _gain(spec.primary, c) > 0]
    winners = [(r, c) for r, c in winners if r.arm not in blocked]
    if winners:
        r, c = max(winners, key=lambda rc: _gain(spec.primary, rc[1]))
        guards = " and no guardrail regressed" if spec.guardrails else ""
        detail = f"{interval_phrase(spec.primary, c)}; {_CORRECTED[spec.correction]}-adjusted "
        detail += _p(r.adjusted_p)
        message = (
            f"{effect_sentence(spec.primary, c, r.arm, base, detail)}{guards}: promote {r.arm}."
        )
        return "promote", (Reason("primary_better", message, r.arm, r.metric),), r.arm
    reasons = [reason for arm_reasons in blocked.values() for reason in arm_reasons]
    shares = {arm.name: arm.share for arm in spec.arms}
    for r, c in primary:
        if not c.ok:
            message = (
                f"{r.arm}'s {spec.primary.title} cannot be tested yet ({_words(c.reason)}): "
                "continue."
            )
            reasons.append(Reason("primary_not_evaluable", message, r.arm, r.metric))
        elif r.significant and _gain(spec.primary, c) > 0:
            continue  # a winner held back by a guardrail: its reason is already there
        else:
            pair = shares[r.arm] + shares[base]
            share = shares[r.arm] / pair if pair > 0 else 0.5
            after = f"not significant after {_CORRECTED[spec.correction]}"
            verdict = after if c.significant else "not significant yet"
            sentence = effect_sentence(
                spec.primary, c, r.arm, base, interval_phrase(spec.primary, c)
            )
            hint = _hint(spec, primary_baseline, r.arm, share)
            message = f"{sentence}: {verdict}{hint}; continue."
            reasons.append(Reason("inconclusive", message, r.arm, r.metric))
    return "continue", tuple(reasons), None
