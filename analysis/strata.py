"""Ramp steps as strata: estimate within each step, combine across steps.

A ramp changes the candidate's share step by step (5 → 25 → 50 %) while the world moves on: a
baseline converting 12 % in the first week and 8 % in the third. Pooled over the steps, the
candidate's runs lean towards the late steps (where its share is large) and the baseline's
towards the early ones, so the drift alone reads as an effect, in either direction. Within one
step both arms see the same world, so the difference of their means is unbiased for the effect;
the combined estimate is a weighted average of those differences with the same weights for every
arm:

    effect = Σ_s w_s · (m_c,s − m_b,s),  Var = Σ_s w_s² · (v_c,s/n_c,s + v_b,s/n_b,s)

with Cochran–Mantel–Haenszel weights for a difference, w_s ∝ n_b,s·n_c,s / (n_b,s + n_c,s)
(Mantel & Haenszel, *JNCI* 22(4), 1959; the risk-difference form of Greenland & Robins,
*Biometrics* 41(1), 1985), normalised to sum to 1: the precision each step would have under a
common variance, fixed by the counts alone, so the weights cannot chase the outcomes. This is
post-stratification by step (Miratrix, Sekhon & Yu, *JRSS B* 75(2), 2013); Kohavi, Tang & Xu,
*Trustworthy Online Controlled Experiments* (2020), ch. 21, name pooling across ramp steps as a
source of Simpson's paradox.

Each arm is handed to the tests as one ``MeanOverUnits`` (``RateOverUnits`` for a proportion) with
mean Σ w_s·m_a,s and a spread chosen so that its variance of the mean is Σ w_s²·v_a,s/n_a,s;
the absolute difference of two such arms has exactly the variance above, and every test (fixed
or sequential, whose confidence sequence then runs on the combined estimate and its standard
error with all the arm's units as n) reads it as it reads any arm. Steps where an arm has fewer
than two observations of the metric give no within-step comparison and are left out. With one
step the step's statistics are returned unchanged (a proportion stays a ``ProportionStats``,
with its exact small-sample handling).

A user who runs in two steps is a unit in each (the store keeps units per step); their two
contributions are positively correlated, which the variance above ignores. Ramps are short and
most users of a step are new to it; the simulation (``benchmarks.analysis``, ``aa_ramp_drift``)
measures the false-decision rate this leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from analysis.effects import moments
from analysis.stats import ArmData, MeanStats, MetricStats, ProportionStats
from analysis.units import MeanOverUnits, RateOverUnits, UnitStats, effective_units

__all__ = ["StepConverter", "StepMetrics", "StepUnits", "arm_data_over_steps", "stratify"]

StepMetrics = Mapping[str, Mapping[str, MetricStats]]
"""One ramp step: arm → metric → statistics."""

StepUnits = Mapping[str, Mapping[str, tuple[str, UnitStats]]]
"""One ramp step as the store keeps it: arm → metric → (kind, sums over the step's units)."""

StepConverter = Callable[[StepUnits], Mapping[str, Mapping[str, MetricStats | None]]]
"""One step's sums over units → arm → metric → statistics (``None``: sums no sample has)."""


def _plain(step: StepUnits) -> dict[str, dict[str, MetricStats | None]]:
    return {
        arm: {metric: sums.as_metric_stats(kind) for metric, (kind, sums) in metrics.items()}
        for arm, metrics in step.items()
    }


def arm_data_over_steps(
    steps: Mapping[int, StepUnits],
    *,
    baseline: str,
    arms: Sequence[str],
    step: int,
    convert: StepConverter | None = None,
) -> dict[str, ArmData]:
    """What ``decide`` reads, from each step's sums over units: per arm, the users and runs of
    the current ``step`` (every run adds a ``success`` observation to its user; the sample
    ratio check counts them against the step's shares) and each metric over users, combined
    over the steps by ``stratify``. The evaluator, the results route and the simulations in
    ``benchmarks`` all come through here. Sums no sample can have leave the metric out of
    that arm, so the analysis reports it as missing instead of raising. ``convert`` turns
    one step's sums into statistics (default ``UnitStats.as_metric_stats``; ``analysis.cuped``
    adjusts them)."""
    users: dict[str, int] = dict.fromkeys(arms, 0)
    runs: dict[str, int] = dict.fromkeys(arms, 0)
    per_step: list[dict[str, dict[str, MetricStats]]] = []
    damaged: set[tuple[str, str]] = set()
    for number in sorted(steps):
        converted: dict[str, dict[str, MetricStats]] = {}
        as_stats = (convert or _plain)(steps[number])
        for arm, metrics in steps[number].items():
            for metric, (_, sums) in metrics.items():
                if metric == "success" and number == step:
                    users[arm] = users.get(arm, 0) + sums.units
                    runs[arm] = runs.get(arm, 0) + round(sums.sum_n)
                stats = as_stats.get(arm, {}).get(metric)
                if stats is None:
                    damaged.add((arm, metric))
                elif stats.n > 0:
                    converted.setdefault(arm, {})[metric] = stats
        per_step.append(converted)
    combined = stratify(per_step, baseline=baseline, arms=arms)
    data: dict[str, ArmData] = {}
    for arm in {*arms, *combined}:
        kept = {m: s for m, s in combined.get(arm, {}).items() if (arm, m) not in damaged}
        data[arm] = ArmData(runs=runs.get(arm, 0), metrics=kept, users=users.get(arm, 0))
    return data


def stratify(
    steps: Sequence[StepMetrics], *, baseline: str, arms: Sequence[str]
) -> dict[str, dict[str, MetricStats]]:
    """Arm → metric → statistics combined over ``steps`` (see the module docstring).
    ``arms`` names the arms to compare; the baseline is the reference of every weight."""
    found = [step for step in steps if any(step.get(arm) for arm in arms)]
    if len(found) <= 1:
        only = found[0] if found else {}
        return {arm: dict(metrics) for arm, metrics in only.items()}
    names = {metric for step in found for metrics in step.values() for metric in metrics}
    out: dict[str, dict[str, MetricStats]] = {}
    for metric in sorted(names):
        for arm, stats in _combine(found, metric, baseline=baseline, arms=arms).items():
            out.setdefault(arm, {})[metric] = stats
    return out


def _observed(step: StepMetrics, arm: str, metric: str) -> MetricStats | None:
    stats = step.get(arm, {}).get(metric)
    if stats is None or stats.n < 2:
        return None
    if isinstance(stats, MeanStats) and stats.defect is not None:
        return None
    return stats


def _combine(
    steps: Sequence[StepMetrics], metric: str, *, baseline: str, arms: Sequence[str]
) -> dict[str, MetricStats]:
    candidates = [arm for arm in arms if arm != baseline]
    weights: list[float] = []
    usable: list[StepMetrics] = []
    for step in steps:
        base = _observed(step, baseline, metric)
        present = [c for c in candidates if _observed(step, c, metric) is not None]
        if base is None or not present:
            continue
        n_b = base.n
        n_c = sum(step[c][metric].n for c in present)
        weights.append(n_b * n_c / (n_b + n_c))
        usable.append(step)
    if not usable:
        return _pooled(steps, metric)
    total = sum(weights)
    out: dict[str, MetricStats] = {}
    for arm in {baseline, *candidates}:
        parts = [
            (w / total, stats)
            for w, step in zip(weights, usable, strict=True)
            if (stats := _observed(step, arm, metric)) is not None
        ]
        if parts:
            out[arm] = _weighted(parts)
    return out


def _weighted(parts: Sequence[tuple[float, MetricStats]]) -> MetricStats:
    """One arm as statistics whose mean is Σ w·m and whose variance of the mean is
    Σ w²·v/n, with all its observations as n."""
    n = sum(stats.n for _, stats in parts)
    mean = 0.0
    variance_of_mean = 0.0
    for w, stats in parts:
        m = moments(stats)
        assert m is not None  # _observed keeps n ≥ 2
        mean += w * m.mean
        variance_of_mean += w * w * m.variance / m.n
    # A step missing from this arm shrinks the weights' sum: rescale so the mean stays a mean.
    share = sum(w for w, _ in parts)
    mean /= share
    variance_of_mean /= share * share
    m2 = variance_of_mean * n * (n - 1)
    # Effective units add over steps (a plain statistic's observations are its units).
    effective = sum(_effective(stats) for _, stats in parts)
    cls = (
        RateOverUnits if isinstance(parts[0][1], ProportionStats | RateOverUnits) else MeanOverUnits
    )
    return cls.over_units(n, mean, m2, effective)


def _effective(stats: MetricStats) -> float:
    found = effective_units(stats)
    return float(stats.n) if found is None else found


def _pooled(steps: Sequence[StepMetrics], metric: str) -> dict[str, MetricStats]:
    """No step compares the arms: every observation pooled, as if there were one step."""
    out: dict[str, MetricStats] = {}
    for step in steps:
        for arm, metrics in step.items():
            stats = metrics.get(metric)
            if stats is None:
                continue
            known = out.get(arm)
            if known is None:
                out[arm] = stats
            elif isinstance(known, ProportionStats) and isinstance(stats, ProportionStats):
                out[arm] = known.merge(stats)
            else:
                out[arm] = _as_mean(known).merge(_as_mean(stats))
    return out


def _as_mean(stats: MetricStats) -> MeanStats:
    """A proportion as the mean of its 0/1 values (M2 = n·p·(1 − p)), to merge with a rate
    over users; anything else as it is."""
    if isinstance(stats, MeanStats):
        return stats
    p = stats.successes / stats.n if stats.n else 0.0
    return RateOverUnits.from_moments(stats.n, p, stats.n * p * (1.0 - p))
