"""The paired comparison, valid at every look: an asymptotic confidence sequence on the mean
of the paired differences.

A shadow's comparison is read while it runs, again and again; acting on the first fixed-horizon
p < α would inflate false verdicts, as it would for an experiment. The differences d_i =
shadow_i − served_i are one sample, so the experiments' sequence applies with t = n pairs and
σ̂ = the differences' standard deviation (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences", *Annals of Statistics*
2024, Theorem 2.2; ``analysis.sequential`` states the boundary): with v = nρ² and
z = d̄ / (σ̂/√n),

    d̄ ± σ̂/√n · √(2(1 + v)/v · log(√(1 + v)/α)),   p = min(1, √(1 + v) · exp(−z² v / (2(1 + v)))),

the always-valid p-value being the normal-mixture mSPRT's (Johari, Pekelis & Walsh 2022). ρ is
tuned for ``tuning_pairs`` (``analysis.sequential.rho_for_runs``): a wrong guess costs width,
never validity. Success is compared the same way on its differences in {−1, 0, 1}.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.paired import PairedReason
from analysis.sequential import rho_for_runs

__all__ = ["DEFAULT_TUNING_PAIRS", "SequentialPaired", "paired_sequential"]

DEFAULT_TUNING_PAIRS = 1_000


@dataclass(frozen=True, slots=True)
class SequentialPaired:
    """The always-valid test of mean(shadow − served) = 0 over ``n`` pairs."""

    n: int
    mean_difference: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    reason: PairedReason
    method: str = "asymptotic confidence sequence on paired differences"


def paired_sequential(
    served: Sequence[float],
    shadow: Sequence[float],
    *,
    alpha: float = 0.05,
    tuning_pairs: float = DEFAULT_TUNING_PAIRS,
) -> SequentialPaired:
    """The sequence and the always-valid p-value; ``ValueError`` for unequal lengths or a bad
    ``alpha`` / ``tuning_pairs``."""
    if len(served) != len(shadow):
        raise ValueError(f"{len(served)} served values but {len(shadow)} shadow values")
    rho = rho_for_runs(tuning_pairs, alpha)
    if rho is None:
        raise ValueError(
            f"alpha in (0, 1) and tuning_pairs > 0 needed, got {alpha}, {tuning_pairs}"
        )
    n = len(served)
    if n == 0:
        return SequentialPaired(0, None, None, None, None, "no_pairs")
    if not all(math.isfinite(v) for v in (*served, *shadow)):
        return SequentialPaired(n, None, None, None, None, "not_finite")
    diffs = [b - a for a, b in zip(served, shadow, strict=True)]
    d_bar = math.fsum(diffs) / n
    if n == 1:
        return SequentialPaired(n, d_bar, None, None, None, "too_few_pairs")
    variance = math.fsum((d - d_bar) ** 2 for d in diffs) / (n - 1)
    if variance <= (8 * math.ulp(max(1.0, abs(d_bar)))) ** 2:
        return SequentialPaired(n, d_bar, None, d_bar, d_bar, "zero_variance")
    se = math.sqrt(variance / n)
    z = d_bar / se
    v = n * rho * rho
    half = se * math.sqrt(2 * (1 + v) / v * math.log(math.sqrt(1 + v) / alpha))
    # In logs: exp() of a large z² underflows to 0, which is the right limit, but keep it exact.
    log_p = 0.5 * math.log1p(v) - z * z * v / (2 * (1 + v))
    p = 1.0 if log_p >= 0 else math.exp(log_p)
    return SequentialPaired(n, d_bar, p, d_bar - half, d_bar + half, "ok")
