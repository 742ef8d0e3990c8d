"""A paired comparison in words: what a person reads before deciding to roll a candidate out.

Each metric says which way is better (success and scores: higher; latency and cost: lower), so
that a difference reads as the shadow being *better* or *worse*, not merely larger or smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from analysis.paired import PairedMeans, PairedProportions

__all__ = ["Better", "metric_verdict", "overall_verdict"]

Better = Literal["higher", "lower"]


def _side(difference: float, better: Better) -> str:
    good = difference > 0 if better == "higher" else difference < 0
    return "better" if good else "worse"


def metric_verdict(
    name: str, result: PairedMeans | PairedProportions, *, better: Better, alpha: float = 0.05
) -> str:
    """One sentence on ``name``: the shadow's difference from the served version, and whether
    it is significant at ``alpha``, or why nothing can be said yet."""
    n, d, p = result.n, result.mean_difference, result.p_value
    pairs = f"{n} pair{'s' if n != 1 else ''}"
    if result.reason == "no_pairs":
        return f"{name}: no pairs yet (no shadow run has ended beside its served run)"
    if result.reason == "not_finite":
        return f"{name}: not compared (a value is not a finite number)"
    if result.reason == "too_few_pairs":
        return f"{name}: one pair only, too few to test"
    assert d is not None
    if result.reason == "no_discordant_pairs":
        return f"{name}: the shadow and the served version agree in all {pairs}"
    if result.reason == "zero_variance":
        if d == 0:
            return f"{name}: identical in all {pairs}"
        return f"{name}: every pair differs by {d:+.4g}, the shadow is {_side(d, better)} ({pairs})"
    assert p is not None
    if p < alpha:
        return (
            f"{name}: the shadow is {_side(d, better)} by {d:+.4g} on average "
            f"(p = {p:.3g}, {pairs})"
        )
    return f"{name}: no significant difference ({d:+.4g} on average, p = {p:.3g}, {pairs})"


def overall_verdict(
    results: Sequence[tuple[str, PairedMeans | PairedProportions, Better]], *, alpha: float = 0.05
) -> str:
    """The comparison in one line: where the shadow is significantly worse, better, or not
    distinguishable from the served version."""
    worse: list[str] = []
    better: list[str] = []
    for name, result, way in results:
        d, p = result.mean_difference, result.p_value
        if result.reason != "ok" or d is None or p is None or p >= alpha:
            continue
        (better if _side(d, way) == "better" else worse).append(name)
    if not any(r.n for _, r, _ in results):
        return "no pairs yet: nothing to compare"
    if worse:
        tail = f"; better on {', '.join(better)}" if better else ""
        return f"the shadow is worse on {', '.join(worse)}{tail}: do not roll it out as it is"
    if better:
        return f"the shadow is better on {', '.join(better)} and worse on nothing measured"
    return "no significant difference between the shadow and the served version"
