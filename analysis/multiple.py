"""Multiple comparisons: Holm's step-down adjustment, or Benjamini–Hochberg's step-up one.

With several candidates and secondary metrics, the chance that *some* comparison looks
significant by luck grows with their number. Two corrections, sorted p₍₁₎ ≤ … ≤ p₍ₘ₎:

- **Holm** (Holm 1979, "A simple sequentially rejective multiple test procedure", *Scandinavian
  Journal of Statistics* 6: 65–70) controls the family-wise error rate (the chance of *any*
  false rejection) at alpha for any dependence between the tests, and is uniformly more
  powerful than Bonferroni::

      p̃₍ᵢ₎ = max_{j ≤ i} min(1, (m − j + 1) · p₍ⱼ₎)

- **Benjamini–Hochberg** (Benjamini & Hochberg 1995, "Controlling the false discovery rate: a
  practical and powerful approach to multiple testing", *JRSS B* 57(1): 289–300) controls the
  false discovery rate (the expected share of false rejections among rejections) at alpha for
  independent or positively dependent tests (Benjamini & Yekutieli 2001, *Annals of
  Statistics* 29(4): 1165–1188), and rejects more::

      p̃₍ᵢ₎ = min_{j ≥ i} min(1, m/j · p₍ⱼ₎)

H₍ᵢ₎ is rejected when p̃₍ᵢ₎ < alpha; the adjusted values are those of
``statsmodels.stats.multitest.multipletests(method="holm" | "fdr_bh")``. Both hold for
always-valid p-values at any single look, so sequential decisions keep their guarantee.

The decision module applies the correction the spec names (Holm by default: a false promotion
ships a worse pipeline, so the family-wise rate is the one to bound) across candidates and
secondary metrics. Guardrails are a separate family: those with margin 0 are Holm-adjusted
among themselves (``ExperimentSpec.guardrail_correction``, on by default), since each can roll
the experiment back and uncorrected several of them roll back A/A experiments well above alpha;
those with a margin are non-inferiority tests at alpha, uncorrected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Correction",
    "HolmResult",
    "MultipleTestResult",
    "adjust",
    "benjamini_hochberg",
    "holm",
]

Correction = Literal["holm", "benjamini_hochberg"]


@dataclass(frozen=True, slots=True)
class MultipleTestResult:
    """Adjusted p-values and rejections, in the order given; ``None`` in, ``None`` out."""

    adjusted: tuple[float | None, ...]
    reject: tuple[bool, ...]
    alpha: float
    tested: int  # m: the p-values that entered the family
    method: Correction = "holm"


HolmResult = MultipleTestResult
"""The name of the result before Benjamini–Hochberg joined; the same class."""


def _family(p_values: Sequence[float | None]) -> list[tuple[float, int]]:
    """The valid p-values with their positions, ascending. ``None`` (a comparison that could not
    be computed) and values that are not probabilities (NaN, outside [0, 1]) stay out."""
    return sorted(
        (p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p) and 0 <= p <= 1
    )


def _result(
    adjusted: list[float | None], alpha: float, m: int, method: Correction
) -> MultipleTestResult:
    usable = 0.0 < alpha < 1.0  # an alpha outside (0, 1) rejects nothing
    reject = tuple(usable and a is not None and a < alpha for a in adjusted)
    return MultipleTestResult(tuple(adjusted), reject, alpha, m, method)


def holm(p_values: Sequence[float | None], alpha: float = 0.05) -> MultipleTestResult:
    """Holm-adjust ``p_values`` (untestable ones are left out of the family: neither adjusted
    nor rejected)."""
    valid = _family(p_values)
    m = len(valid)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(valid):
        running = max(running, min(1.0, (m - rank) * p))  # the step-down running maximum
        adjusted[index] = running
    return _result(adjusted, alpha, m, "holm")


def benjamini_hochberg(p_values: Sequence[float | None], alpha: float = 0.05) -> MultipleTestResult:
    """Benjamini–Hochberg-adjust ``p_values`` (the same family rules as ``holm``)."""
    valid = _family(p_values)
    m = len(valid)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 1.0
    for rank in range(m - 1, -1, -1):  # from the largest: the step-up running minimum
        p, index = valid[rank]
        running = min(running, m / (rank + 1) * p)
        adjusted[index] = running
    return _result(adjusted, alpha, m, "benjamini_hochberg")


def adjust(
    p_values: Sequence[float | None], alpha: float = 0.05, method: Correction = "holm"
) -> MultipleTestResult:
    """``holm`` or ``benjamini_hochberg`` by name (an unknown name is Holm's, the stricter)."""
    if method == "benjamini_hochberg":
        return benjamini_hochberg(p_values, alpha)
    return holm(p_values, alpha)
