"""The words of a decision: effects, intervals and margins as a person reads them.

Rates are shown in percent and their differences in percentage points; numeric metrics in their
own units with the relative change. Every figure of one sentence gets the same number of
decimals, chosen so the interval's half-width shows two significant digits: the precision the
data have, no more. Negative numbers use the minus sign (−).
"""

from __future__ import annotations

import math

from analysis.comparison import Comparison
from analysis.spec import Guardrail, MetricSpec

__all__ = ["count", "effect_sentence", "interval_phrase", "level", "margin_phrase", "number"]


def number(x: float, decimals: int) -> str:
    """``x`` with ``decimals`` decimals, thousands separators and a true minus sign."""
    text = f"{x:,.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        text = text.lstrip("-")  # no "−0.0"
    return text.replace("-", "−")


def count(n: int) -> str:
    return f"{n:,}"


def _decimals(spread: float | None) -> int:
    """Decimals for figures whose uncertainty is about ``spread``: two significant digits."""
    if spread is None or not math.isfinite(spread) or spread <= 0:
        return 2
    return min(6, max(0, 1 - math.floor(math.log10(spread))))


def level(c: Comparison) -> str:
    """ "95 % CI", or "95 % always-valid CI" for a confidence sequence."""
    pct = number(100 * (1 - c.alpha), 0 if round(100 * (1 - c.alpha), 6).is_integer() else 1)
    return f"{pct} % {'always-valid CI' if c.method == 'asymptotic_cs' else 'CI'}"


def _scale(metric: MetricSpec) -> tuple[float, str]:
    """Multiplier and unit of an absolute difference: points for rates, raw units otherwise."""
    return (100.0, " points") if metric.kind == "proportion" else (1.0, "")


def _spread(metric: MetricSpec, c: Comparison) -> float | None:
    factor, _ = _scale(metric)
    if c.ci_low is not None and c.ci_high is not None:
        return factor * (c.ci_high - c.ci_low) / 2
    if c.effect is not None and (c.ci_low is not None or c.ci_high is not None):
        bound = c.ci_low if c.ci_low is not None else c.ci_high
        assert bound is not None
        return factor * abs(c.effect - bound)
    if c.effect is not None and c.effect != 0:
        return factor * abs(c.effect)
    return None


def effect_sentence(
    metric: MetricSpec, c: Comparison, arm: str, baseline: str, detail: str = ""
) -> str:
    """ "v3.3's success rate is 4.1 points below v3.2 (88.0 % vs 92.1 %; <detail>)"."""
    factor, unit = _scale(metric)
    d = _decimals(_spread(metric, c))
    title = metric.title
    if c.effect is None or c.mean_baseline is None or c.mean_candidate is None:
        return f"{arm}'s {title} cannot be compared with {baseline}"
    size = number(abs(c.effect) * factor, d)
    way = "above" if c.effect > 0 else "below"
    if c.effect == 0:
        head = f"{arm}'s {title} equals {baseline}'s"
    else:
        head = f"{arm}'s {title} is {size}{unit} {way} {baseline}"
    if metric.kind == "proportion":
        values = f"{number(100 * c.mean_candidate, d)} % vs {number(100 * c.mean_baseline, d)} %"
    else:
        values = f"{number(c.mean_candidate, d)} vs {number(c.mean_baseline, d)}"
        if c.relative_effect is not None and c.effect != 0:
            sign = "+" if c.relative_effect > 0 else ""
            values += f", {sign}{number(100 * c.relative_effect, 1)} %"
    return f"{head} ({values}; {detail})" if detail else f"{head} ({values})"


def interval_phrase(metric: MetricSpec, c: Comparison) -> str:
    """ "95 % CI −6.0 to −2.2 points"; a one-sided interval reads as a bound on the side the
    test looked at: "95 % always-valid bound: at least 15.7 % above"."""
    relative = c.scale == "relative"
    factor, unit = (100.0, " %") if relative else _scale(metric)
    low, high = (c.relative_ci_low, c.relative_ci_high) if relative else (c.ci_low, c.ci_high)
    estimate = c.relative_effect if relative else c.effect
    if low is not None and high is not None:
        spread: float | None = factor * (high - low) / 2
    elif estimate is not None and (low is not None or high is not None):
        spread = factor * abs(estimate - (low if low is not None else high or 0.0))
    else:
        spread = None
    d = _decimals(spread)
    name = level(c)
    if low is not None and high is not None:
        return f"{name} {number(low * factor, d)} to {number(high * factor, d)}{unit}"
    bound_name = name.replace("CI", "bound")
    if low is not None:  # H1 "greater": how far above, at least
        size = number(abs(low) * factor, d)
        words = f"at least {size}{unit} above" if low >= 0 else f"at most {size}{unit} below"
        return f"{bound_name}: {words}"
    if high is not None:  # H1 "less": how far below, at least
        size = number(abs(high) * factor, d)
        words = f"at least {size}{unit} below" if high <= 0 else f"at most {size}{unit} above"
        return f"{bound_name}: {words}"
    return f"no {name}"


def margin_phrase(guard: Guardrail) -> str:
    """ "the 1-point margin", "the 5 % margin", "the 0.2 margin", "no margin"."""
    if guard.margin == 0:
        return "a zero margin"
    if guard.margin_relative:
        return f"the {_short(100 * guard.margin)} % margin"
    if guard.kind == "proportion":
        points = _short(100 * guard.margin)
        return f"the {points}-point margin"
    return f"the {_short(guard.margin)} margin"


def _short(x: float) -> str:
    """A threshold as written by a person: 1, 0.5, 2.5 (no trailing zeros)."""
    return f"{x:.6g}".replace("-", "−")
