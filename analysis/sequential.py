"""Sequential tests: valid under continuous monitoring (a look after every batch, stop any time).

**Asymptotic confidence sequences** (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences", *Annals of Statistics*
2024, arXiv:2103.06476, Theorem 2.2). For a mean estimated from t observations with standard
deviation σ̂, the (1 − α) two-sided confidence sequence is

    μ̂_t ± σ̂_t · √( 2(tρ² + 1)/(t²ρ²) · log(√(tρ² + 1)/α) )

(Robbins' normal-mixture boundary with the empirical variance plugged in). For the difference of
two arms we apply it to the difference in means with σ̂² = t·Var(m_c − m_b), t = n_b + n_c: the
per-unit variance σ_c²/π + σ_b²/(1 − π) of the difference-in-means estimator under Bernoulli(π)
assignment (the paper's ATE section; GrowthBook's gbstats does the same). The relative effect
uses its delta-method variance (``analysis.effects``) in the same boundary. In standard errors
the half-width is c = √(2(1 + v)/v · log(√(1 + v)/α)) with v = tρ².

The always-valid p-value is the smallest α whose sequence excludes the null:
p = min(1, √(1 + v) · exp(−z² v / (2(1 + v)))). It equals the normal-mixture mSPRT of Johari,
Pekelis & Walsh ("Always valid inference: continuous monitoring of A/B tests", *Operations
Research* 70(3), 2022, the mixture likelihood ratio Λ_n with H = N(θ₀, τ²)): p = min(1, 1/Λ)
with τ² = ρ²σ̂². So ρ plays the role of the mSPRT's τ: the tuning parameter is exposed as ``rho``
or, more usefully, as ``tuning_runs``, the total runs at which the sequence is tightest, through
the paper's approximation ρ² = (2 log(1/α) + log(1 + 2 log(1/α)))/t⋆.

**One-sided** tests use the half-normal mixture of the same martingale (Robbins 1970; Howard,
Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
*Annals of Statistics* 49(2), 2021, §3): mixing exp(λS − λ²t/2) over λ ~ N(0, ρ²) restricted to
λ > 0 gives, by completing the square,

    M = 2/√(1 + v) · exp(z² a/2) · Φ(z√a),  a = v/(1 + v)

with z signed towards the alternative; p = min(1, 1/M), and the bound solves M = 1/α (M rises
with z, so one root in [0, two-sided c]). Ville's inequality makes both valid at every look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, special

from analysis.comparison import Alternative, Comparison, Scale, compare
from analysis.effects import Moments
from analysis.stats import MetricStats

__all__ = ["DEFAULT_TUNING_RUNS", "rho_for_runs", "sequential_test"]

DEFAULT_TUNING_RUNS = 10_000
"""Total runs (both arms) at which the sequence is tightest by default; set it to the runs you
expect at the decision, e.g. the fixed-horizon total from ``analysis.power`` for the MDE. A wrong
guess costs width (a slower decision), never validity."""


def rho_for_runs(runs: float, alpha: float = 0.05) -> float | None:
    """ρ that makes the two-sided sequence tightest near ``runs`` total observations
    (Waudby-Smith et al. 2024, the closed-form approximation to the width-minimising ρ):
    ρ² = (2 log(1/α) + log(1 + 2 log(1/α)))/t⋆. ``None`` for runs ≤ 0 or alpha outside (0, 1)."""
    if not (runs > 0 and math.isfinite(runs) and 0.0 < alpha < 1.0):
        return None
    two_log = -2.0 * math.log(alpha)
    return math.sqrt((two_log + math.log1p(two_log)) / runs)


@dataclass(frozen=True, slots=True)
class _Mixture:
    """The normal-mixture boundary at t total observations; v = tρ²."""

    v: float

    def multiplier(self, alpha: float, one_sided: bool) -> float:
        v = self.v
        two_sided = math.sqrt(2.0 * (1.0 + v) / v * (0.5 * math.log1p(v) - math.log(alpha)))
        if not one_sided or not math.isfinite(two_sided):
            return two_sided  # an infinite multiplier makes ``compare`` answer "not_finite"
        a = v / (1.0 + v)
        root_a = math.sqrt(a)
        offset = math.log(2.0) - 0.5 * math.log1p(v) + math.log(alpha)

        def log_m_minus_target(c: float) -> float:  # log M(c) − log(1/α)
            return offset + c * c * a / 2.0 + float(special.log_ndtr(c * root_a))

        # log M(0) = −½log(1 + v) < log(1/α) and log M(two_sided) = log(1/α) + log 2Φ(·) > it
        return float(optimize.brentq(log_m_minus_target, 0.0, two_sided, xtol=1e-10))

    def p_value(self, z: float, one_sided: bool) -> float:
        v = self.v
        a = v / (1.0 + v)
        if not one_sided:
            log_p = 0.5 * math.log1p(v) - z * z * a / 2.0
        elif z <= 0:
            return 1.0  # M(z) ≤ M(0) = 1/√(1 + v) < 1
        else:
            log_p = -(
                math.log(2.0)
                - 0.5 * math.log1p(v)
                + z * z * a / 2.0
                + float(special.log_ndtr(z * math.sqrt(a)))
            )
        return math.exp(min(0.0, log_p))


def sequential_test(
    baseline: MetricStats,
    candidate: MetricStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    null: float = 0.0,
    scale: Scale = "absolute",
    rho: float | None = None,
    tuning_runs: float = DEFAULT_TUNING_RUNS,
    min_events: float = 0.0,
) -> Comparison:
    """The asymptotic confidence sequence of candidate − baseline (``method="asymptotic_cs"``):
    intervals are (1 − alpha) confidence sequences, p-values always valid, so looking after every
    batch and stopping at the first significant look keeps false decisions at or below alpha.

    ``rho`` is the mixture's tuning parameter; ``None`` derives it from ``tuning_runs`` (total
    runs of both arms where the sequence is tightest) and ``alpha``. Fix it before the
    experiment: a ρ chosen from the data voids the guarantee. Proportions use the Bernoulli
    variance, numeric metrics the sample variance (the boundary is asymptotic: it needs no
    Gaussian data, only finite variance and enough runs for the CLT). Hence ``min_events``:
    two proportions whose smaller arm expects fewer events (``analysis.degenerate``) are not
    tested; 0, the default here, checks nothing. An empty cell or an arm without spread uses
    the adjusted moments of ``analysis.degenerate`` (Agresti–Caffo, pooled variance) in the same
    boundary: both are consistent, so the asymptotic guarantee holds.
    """
    if rho is None:
        rho = rho_for_runs(tuning_runs, alpha if 0.0 < alpha < 1.0 else 0.05)
    rho_sq = rho * rho if rho is not None and math.isfinite(rho) and rho > 0 else math.nan
    ok = 0.0 < rho_sq < math.inf  # also refuses a ρ whose square under- or overflows
    if not ok:
        rho_sq = 1.0  # unused: ``compare`` stops at the invalid parameter

    def boundary_for(b: Moments, c: Moments) -> _Mixture:
        return _Mixture((b.n + c.n) * rho_sq)

    return compare(
        baseline,
        candidate,
        method="asymptotic_cs",
        boundary_for=boundary_for,
        alpha=alpha,
        alternative=alternative,
        null=null,
        scale=scale,
        parameters_ok=ok,
        min_events=min_events,
    )
