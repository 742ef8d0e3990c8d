"""Multiple comparisons: Holm's step-down adjustment.

With several candidates and secondary metrics, the chance that *some* comparison looks
significant by luck grows with their number. Holm's procedure (Holm 1979, "A simple sequentially
rejective multiple test procedure", *Scandinavian Journal of Statistics* 6: 65–70) controls the
family-wise error rate at alpha for any dependence between the tests and is uniformly more
powerful than Bonferroni. Sorted ascending, p₍ᵢ₎ (i = 1..m) is adjusted to

    p̃₍ᵢ₎ = max_{j ≤ i} min(1, (m − j + 1) · p₍ⱼ₎)

and H₍ᵢ₎ is rejected when p̃₍ᵢ₎ < alpha (the figures of
``statsmodels.stats.multitest.multipletests(method="holm")``). It holds for always-valid
p-values too, so sequential decisions keep their guarantee.

The decision module applies it across candidates and secondary metrics, never to guardrails: a
guardrail is a safety check, and adjusting it would make regressions harder to catch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HolmResult", "holm"]


@dataclass(frozen=True, slots=True)
class HolmResult:
    """Adjusted p-values and rejections, in the order given; ``None`` in, ``None`` out."""

    adjusted: tuple[float | None, ...]
    reject: tuple[bool, ...]
    alpha: float
    tested: int  # m: the p-values that entered the family


def holm(p_values: Sequence[float | None], alpha: float = 0.05) -> HolmResult:
    """Holm-adjust ``p_values``. ``None`` (a comparison that could not be computed) and values
    that are not probabilities (NaN, outside [0, 1]) are left out of the family: they are
    neither adjusted nor rejected. An ``alpha`` outside (0, 1) rejects nothing."""
    valid = [
        (p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p) and 0 <= p <= 1
    ]
    m = len(valid)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))  # the step-down running maximum
        adjusted[index] = running
    usable = 0.0 < alpha < 1.0
    reject = tuple(usable and a is not None and a < alpha for a in adjusted)
    return HolmResult(tuple(adjusted), reject, alpha, m)
