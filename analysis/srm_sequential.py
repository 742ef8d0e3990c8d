"""Sequential sample ratio mismatch: an always-valid test of the assignment ratio.

The chi-square check (``analysis.srm``) is valid at one look; the evaluator looks every 30 s,
and every look is another chance of a false alarm that halts the experiment. This test may be
looked at after every unit, for ever, and still raises a false alarm with probability at most
its threshold.

**The Dirichlet-multinomial mixture SPRT** of Lindon & Malek ("Anytime-Valid Inference for
Multinomial Count Data", *NeurIPS* 35, 2022, the sequential multinomial test they apply to
sample ratio mismatch; arXiv:2011.03567). Each unit's arm is a Multinomial(1, θ) draw and H0 is
θ = θ₀, the configured shares. Mixing the likelihood over θ ~ Dirichlet(α), α = k·θ₀, gives the
Bayes factor of the counts x (n = Σx) against H0, the multinomial coefficient cancelling::

    BF_n = [B(α + x) / B(α)] / Π θ₀ᵢ^xᵢ,     log B(a) = Σ log Γ(aᵢ) − log Γ(Σ aᵢ)

Under H0, BF_n is a nonnegative martingale with mean 1, so by Ville's inequality
P(BF_n ≥ 1/threshold for some n) ≤ threshold: the test flags when BF_n ≥ 1/threshold, and
p_n = min(1, 1/BF_n) is an always-valid p-value (a caller may keep its running minimum over
looks; it is valid too). Counts must be cumulative from the start of the shares they are tested
against, and of independent units: users, when assignment is by user (a user's repeated runs
are not independent draws, and would make any ratio test alarm falsely).

``concentration`` is k: the prior centres on θ₀ with a spread of about √(θ(1 − θ)/(k + 1)),
5 points for 50/50 at the default k = 100 (the default of the ``savvi`` package's
``Multinomial``, an implementation of this test). A larger k is more sensitive to small
mismatches and slower on large ones; any k > 0 keeps the guarantee.

**Across ramp steps** the shares change, so each step is tested against its own θ₀, and
``sequential_srm_steps`` multiplies the steps' Bayes factors (a finished step's at its end, the
current one's now). Each factor starts at 1 when its step begins and is a martingale under H0
given the past, so the product is a nonnegative martingale with mean 1 and Ville's bound holds
for the whole ramp at one threshold (the product of sequential e-values: Vovk & Wang, "E-values:
calibration, combination and applications", *Annals of Statistics* 49(3), 2021).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from analysis.srm import DEFAULT_SRM_THRESHOLD, Prepared, SRMResult, prepare

__all__ = [
    "DEFAULT_CONCENTRATION",
    "METHOD",
    "log_bayes_factor",
    "sequential_srm_check",
    "sequential_srm_steps",
]

DEFAULT_CONCENTRATION = 100.0
METHOD = "dirichlet_multinomial"


def log_bayes_factor(counts: Sequence[int], shares: Sequence[float], concentration: float) -> float:
    """log BF_n of ``counts`` against ``shares`` (positive, summing to 1) with the prior
    Dirichlet(concentration · shares); see the module docstring. Pure ``math.lgamma``: a few
    arms cost microseconds, so every look can afford it."""
    alpha = [concentration * s for s in shares]
    n = sum(counts)
    log_b_posterior = math.fsum(math.lgamma(a + x) for a, x in zip(alpha, counts, strict=True))
    log_b_prior = math.fsum(math.lgamma(a) for a in alpha)
    normalisers = math.lgamma(concentration) - math.lgamma(concentration + n)
    log_null = math.fsum(x * math.log(s) for x, s in zip(counts, shares, strict=True) if x)
    return normalisers + log_b_posterior - log_b_prior - log_null


def _log_bf(prepared: Prepared, concentration: float) -> float:
    counts = [prepared.observed[arm] for arm in prepared.tested]
    weights = [prepared.share[arm] for arm in prepared.tested]
    total = math.fsum(weights)  # arms at share 0 are out: renormalise over the rest
    return log_bayes_factor(counts, [w / total for w in weights], concentration)


def _verdict(base: SRMResult, log_bf: float) -> SRMResult:
    if math.isnan(log_bf):  # unreachable for valid counts; never a NaN in a result
        return replace(base, reason="invalid_input", expected={})
    flagged = log_bf >= -math.log(base.threshold)
    p = math.exp(-log_bf) if log_bf > 0 else 1.0  # underflows to 0 for overwhelming evidence
    return replace(
        base,
        flagged=flagged,
        reason="mismatch" if flagged else "ok",
        p_value=p,
        statistic=log_bf,
        df=None,
    )


def sequential_srm_check(
    counts: Mapping[str, int],
    shares: Mapping[str, float],
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
    concentration: float = DEFAULT_CONCENTRATION,
) -> SRMResult:
    """The always-valid test of ``counts`` (units per arm since ``shares`` took effect) against
    ``shares`` (any positive weights), ``method="dirichlet_multinomial"``. Arms and degenerate
    cases as ``analysis.srm.srm_check``: runs at share 0 flag, no data or one arm do not."""
    return sequential_srm_steps(
        [(counts, shares)], threshold=threshold, concentration=concentration
    )


def sequential_srm_steps(
    steps: Sequence[tuple[Mapping[str, int], Mapping[str, float]]],
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
    concentration: float = DEFAULT_CONCENTRATION,
) -> SRMResult:
    """One test across ramp steps: ``steps`` holds each step's (counts, shares), oldest first,
    the last being the current step (its counts and expectations are the result's
    ``observed``/``expected``). The Bayes factors multiply (see the module docstring); runs at
    share 0 in any step flag; invalid input anywhere, or a ``concentration`` that is not a
    positive finite number, is ``invalid_input``."""
    if not steps:
        return SRMResult(flagged=False, reason="no_data", threshold=threshold, method=METHOD)
    checked = [prepare(c, s, threshold=threshold, method=METHOD) for c, s in steps]
    last = checked[-1]
    current = last.base if isinstance(last, Prepared) else last
    if not (0.0 < concentration < math.inf):
        return replace(current, flagged=False, reason="invalid_input", expected={})
    for step in checked:
        if isinstance(step, SRMResult) and step.reason in ("invalid_input", "zero_share_with_runs"):
            # the step that failed or flagged speaks; its own counts are the evidence
            return step
    tested = [step for step in checked if isinstance(step, Prepared)]
    if not tested:
        return current  # "no_data" or "single_arm" everywhere: nothing to test
    log_bf = math.fsum(_log_bf(step, concentration) for step in tested)
    return _verdict(current, log_bf)
