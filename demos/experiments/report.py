"""What the demo prints about one scenario: its heading, the experiment's rules, a line per batch
(:class:`BatchTable`: the arms' runs, the watched metric's effect, interval and p-value, and what
the evaluation decided) and the ending with the numbers it rests on. Text only: the calls to the
server are the driver's (:mod:`demos.experiments.drive`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from control_plane.cli.experiments import render_results
from control_plane.experiments.schemas import BUILTIN_METRICS
from demos.experiments.scenarios import Scenario

__all__ = ["BatchTable", "ending_lines", "experiment_lines", "heading", "is_rate", "users_line"]

_ACTION: Final = {"continue": "continue", "halt": "halt", "promote": "better", "rollback": "worse"}
_WHY: Final = {
    "below_min_runs": "too few runs",
    "srm": "sample ratio mismatch",
    "no_data": "no data yet",
    "metric_no_data": "no data yet",
    "no_traffic": "no traffic",
    "guardrail_not_evaluable": "guardrail not testable yet",
}


def heading(number: int, scenario: Scenario, candidate: str) -> list[str]:
    title = f"── {number}. {scenario.title}: {candidate} "
    return [title + "─" * max(3, 96 - len(title)), f"   {scenario.about}"]


def users_line(scenario: Scenario, baseline: str, candidate: str) -> str:
    rates = scenario.conversion
    return (
        f"   users convert {rates['baseline'] * 100:g} % on {baseline}, "
        f"{rates['candidate'] * 100:g} % on {candidate} (never when the run fails)"
    )


def experiment_lines(
    experiment_id: int, body: dict[str, Any], baseline: str, candidate: str
) -> list[str]:
    """The experiment as started: its arms, ramp, metrics and rules."""
    steps = " → ".join(f"{s['percent']:g}" for s in body["ramp"])
    where = f"{body['workflow']}:{body['label']}"
    started = f"experiment {experiment_id} on {where}: {baseline} vs {candidate}, ramp {steps} %"
    return [f"   {line}" for line in (started, *_rules(body))]


def _rules(body: dict[str, Any]) -> list[str]:
    """The experiment's metrics and rules, in two lines."""
    guards = []
    for g in body.get("guardrails", []):
        margin = float(g.get("margin", 0))
        relative = bool(g.get("relative")) and margin > 0
        words = f"{margin * 100:+g} %" if relative else f"{margin:g}"
        guards.append(f"{g['name']} (margin {words})")
    flags = [
        f"auto rollback {'on' if body.get('auto_rollback', True) else 'off'}",
        f"auto promote {'on' if body.get('auto_promote', False) else 'off'}",
    ]
    return [
        f"primary {body['primary']['name']}; guardrails {', '.join(guards)}",
        ", ".join(flags),
    ]


def is_rate(body: dict[str, Any], metric: str) -> bool:
    """Whether ``metric`` is a proportion in the experiment ``body``."""
    for m in (body["primary"], *body.get("guardrails", [])):
        if m["name"] == metric:
            return (m.get("kind") or BUILTIN_METRICS.get(metric)) == "proportion"
    return False


@dataclass(frozen=True)
class BatchTable:
    """A line per batch: what one evaluation saw of ``metric`` and what it decided. A ``rate``
    reads best in points."""

    baseline: str
    candidate: str
    metric: str
    rate: bool
    ramp: list[dict[str, Any]]

    @property
    def _widths(self) -> tuple[int, int]:
        return max(6, len(self.baseline)), max(6, len(self.candidate))

    def header(self) -> str:
        wb, wc = self._widths
        return (
            f"   {'batch':>5} {'users':>6} {'share':>5}  {self.baseline:>{wb}} "
            f"{self.candidate:>{wc}}  {self.metric + ' Δ':>12}  {'95 % interval':<19} {'p':>7}  "
            "decision"
        )

    def row(self, batch: int, users: int, evaluation: dict[str, Any]) -> str:
        wb, wc = self._widths
        stats = evaluation["statistics"]
        n = {m["arm"]: m["n"] for m in stats["metrics"] if m["metric"] == "success"}
        effect, interval, p = _watched(stats, self.candidate, self.metric, rate=self.rate)
        share = self.ramp[min(evaluation["step"], len(self.ramp) - 1)]["percent"]
        return (
            f"   {batch:>5} {users:>6,} {share:>3g} %  {n.get(self.baseline, 0):>{wb}} "
            f"{n.get(self.candidate, 0):>{wc}}  {effect:>12}  {interval:<19} {p:>7}  "
            f"{_decision(evaluation, self.ramp)}"
        )


def _signed(value: float | None, percent: bool) -> str:
    if value is None:
        return "…"
    return f"{value * 100:+.1f}" if percent else f"{value:+.3g}"


def _watched(
    statistics: dict[str, Any], candidate: str, metric: str, *, rate: bool
) -> tuple[str, str, str]:
    """The candidate's effect on ``metric`` against the baseline, its 95 % interval (one-sided
    for a guardrail: the bound its test uses) and p-value, as text; a ``rate`` in points."""
    row: dict[str, Any] = next(
        (m for m in statistics["metrics"] if m["arm"] == candidate and m["metric"] == metric), {}
    )
    if row.get("effect") is None:
        return "-", "-", "-"
    unit = " pts" if rate else ""
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None and high is None:
        interval = "-"
    elif low is None:
        interval = f"≤ {_signed(high, rate)}{unit}"
    elif high is None:
        interval = f"≥ {_signed(low, rate)}{unit}"
    else:
        interval = f"[{_signed(low, rate)}, {_signed(high, rate)}]{unit}"
    p = row.get("p_value")
    p_text = "-" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")
    return f"{_signed(row['effect'], rate)}{unit}", interval, p_text


def _decision(evaluation: dict[str, Any], ramp: list[dict[str, Any]]) -> str:
    """What one evaluation decided and did, in a few words."""
    applied, action = evaluation["applied"], str(evaluation["action"])
    if applied in ("rollback", "promote"):
        return str(applied).upper()
    text = _ACTION.get(action, action)
    if applied == "ramp":
        return f"{text} → ramp to {ramp[evaluation['step'] + 1]['percent']:g} %"
    codes = [r["code"] for r in evaluation["reasons"]]
    why = next((_WHY[c] for c in codes if c in _WHY), None)
    return f"{text} ({why})" if why else text


def ending_lines(
    experiment_id: int,
    users: int,
    evaluation: dict[str, Any],
    results: dict[str, Any],
    candidate: str,
    label: str,
    label_before: str | None,
    label_after: str | None,
) -> list[str]:
    """How the experiment ended and, if it was evaluated at all, the numbers of its last
    evaluation; with the blank lines around them."""
    status = results["experiment"]["status"]
    if status == "rolled_back":
        ending = (
            f"⇒ ROLLED BACK after {users:,} users: {candidate} gets no more traffic, "
            f"label {label} stays on {label_after}"
        )
    elif status == "promoted":
        ending = f"⇒ PROMOTED after {users:,} users: label {label} {label_before} → {label_after}"
    else:
        ending = f"⇒ no decision after {users:,} users: experiment {experiment_id} is {status}"
    lines = ["", f"   {ending}"]
    if evaluation:
        # The numbers the ending rests on. (Read again after a rollback, the results would see
        # the candidate's runs against its new 0 % share and call that a sample ratio mismatch.)
        final = {
            **evaluation["statistics"],
            "experiment": results["experiment"],
            "action": evaluation["action"],
            "reasons": evaluation["reasons"],
        }
        lines += ["", "\n".join(f"   {line}" for line in render_results(final).splitlines())]
    return [*lines, ""]
