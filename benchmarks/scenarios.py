"""Simulated experiments on the traffic the product gets, decided the way the evaluator decides.

Each scenario draws whole experiments of users (numpy, a fixed seed): users arrive in 50 looks,
each is assigned to the candidate with the current ramp step's share, runs 1 + NegBin times
(heavy-tailed) or once, converts with a rate of their own (Beta, a stated within-user
correlation) or the look's rate, and reports guardrail values per run. After every look the
arms' sums over users, per ramp step, go through ``analysis.strata.arm_data_over_steps`` (what
``control_plane.experiments.results.unit_data_of`` hands the store's rows to) and
``analysis.decide`` with the finished steps for the sequential sample ratio check, exactly as
the evaluator calls them. An experiment *decides falsely* when any look's action is promote or
rollback with no true difference; it stops at a final verdict (a fixed-horizon test at its
planned size), as the evaluator ends it there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis import ArmSpec, Decision, ExperimentSpec, decide
from analysis.decision import SRMStep
from analysis.strata import StepUnits, arm_data_over_steps
from analysis.units import UnitStats

__all__ = ["LOOKS", "Outcome", "Scenario", "run"]

LOOKS = 50
ARMS = ("A", "B")
_SUMS = 6  # units, ΣN, ΣS, ΣN², ΣS², ΣSN
GUARD_MEAN, GUARD_SD = 1.0, 0.3


@dataclass(frozen=True)
class Scenario:
    """One kind of experiment. ``shares[s]`` is the candidate's share at ramp step s and
    ``steps[look]`` the step of each look; ``rates[look]`` the baseline's conversion at that
    look (a drift), the candidate's is ``rate · (1 + lift)``."""

    name: str
    spec: ExperimentSpec
    users_per_look: int
    shares: tuple[float, ...]
    steps: tuple[int, ...]
    rates: tuple[float, ...]
    mean_runs: float = 1.0
    icc: float = 0.0
    lift: float = 0.0
    guardrails: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """One experiment: the first look that decided (``None``: never), what it decided, and
    whether the sample ratio check ever flagged."""

    look: int | None
    action: str | None
    srm_flagged: bool


def _grouped(index: np.ndarray, n: np.ndarray, s: np.ndarray, bins: int) -> np.ndarray:
    """Per (look, arm) bin: the six sums over its users."""
    out = np.empty((bins, _SUMS))
    weights = (None, n, s, n * n, s * s, s * n)
    for k, w in enumerate(weights):
        out[:, k] = np.bincount(index, weights=w, minlength=bins)
    return out


def _draw(rng: np.random.Generator, sc: Scenario) -> dict[str, np.ndarray]:
    """Metric → sums per look and arm, shape (LOOKS, 2, 6), new users only."""
    users = sc.users_per_look * LOOKS
    look = np.repeat(np.arange(LOOKS), sc.users_per_look)
    share = np.asarray(sc.shares)[np.asarray(sc.steps)][look]
    arm = (rng.random(users) < share).astype(np.int64)
    if sc.mean_runs > 1.0:
        runs = 1.0 + rng.negative_binomial(0.5, 0.5 / (0.5 + sc.mean_runs - 1.0), size=users)
    else:
        runs = np.ones(users)
    rate = np.asarray(sc.rates)[look] * (1.0 + sc.lift * arm)
    if sc.icc > 0:
        k = (1.0 - sc.icc) / sc.icc
        rate = rng.beta(rate * k, (1.0 - rate) * k)
    converted = rng.binomial(runs.astype(np.int64), rate).astype(float)
    index = look * 2 + arm
    bins = LOOKS * 2
    metrics = {
        "success": _grouped(index, runs, runs, bins),
        sc.spec.primary.name: _grouped(index, runs, converted, bins),
    }
    for name in sc.guardrails:
        # A user's total over N runs of N(μ, σ²) values is N(Nμ, Nσ²).
        totals = rng.normal(runs * GUARD_MEAN, np.sqrt(runs) * GUARD_SD)
        metrics[name] = _grouped(index, runs, totals, bins)
    return {m: sums.reshape(LOOKS, 2, _SUMS) for m, sums in metrics.items()}


def _within_steps(sums: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """Cumulative sums over the looks of each look's own ramp step."""
    out = np.cumsum(sums, axis=0)
    first = 0
    for look in range(1, LOOKS + 1):
        if look == LOOKS or steps[look] != steps[first]:
            if first > 0:
                out[first:look] -= np.cumsum(sums[:first], axis=0)[-1]
            first = look
    return out


def _unit_stats(row: np.ndarray) -> UnitStats:
    n, s, nn, ss, sn = (float(v) for v in row[1:6])
    return UnitStats(int(row[0]), n, s, nn, ss, sn)


def _spec_at(sc: Scenario, step: int) -> ExperimentSpec:
    share = sc.shares[step]
    return dataclasses.replace(
        sc.spec, baseline=ArmSpec(ARMS[0], 1.0 - share), candidates=(ArmSpec(ARMS[1], share),)
    )


def _kind(sc: Scenario, metric: str) -> str:
    return "mean" if metric in sc.guardrails else "proportion"


def decisions(rng: np.random.Generator, sc: Scenario) -> list[Decision]:
    """Every look's decision of one experiment, up to the first that acts (promote or roll
    back: the evaluator would end the experiment there) or is final."""
    cum = {m: _within_steps(s, sc.steps) for m, s in _draw(rng, sc).items()}
    out: list[Decision] = []
    finished: dict[int, StepUnits] = {}
    earlier: list[SRMStep] = []
    for look in range(LOOKS):
        step = sc.steps[look]
        current: StepUnits = {
            arm: {m: (_kind(sc, m), _unit_stats(c[look, i])) for m, c in cum.items()}
            for i, arm in enumerate(ARMS)
        }
        data = arm_data_over_steps(
            {**finished, step: current}, baseline=ARMS[0], arms=ARMS, step=step
        )
        decision = decide(_spec_at(sc, step), data, earlier_steps=earlier)
        out.append(decision)
        if decision.final or decision.action in ("promote", "rollback"):
            break
        if look + 1 < LOOKS and sc.steps[look + 1] != step:
            finished[step] = current
            shares = {ARMS[0]: 1.0 - sc.shares[step], ARMS[1]: sc.shares[step]}
            users = {arm: data[arm].users or 0 for arm in ARMS}
            earlier.append((users, shares))
    return out


def run(rng: np.random.Generator, sc: Scenario, experiments: int) -> list[Outcome]:
    """``experiments`` independent experiments of the scenario."""
    outcomes = []
    for _ in range(experiments):
        first: tuple[int, str] | None = None
        flagged = False
        for look, decision in enumerate(decisions(rng, sc)):
            flagged = flagged or (decision.srm is not None and decision.srm.flagged)
            if first is None and decision.action in ("promote", "rollback"):
                first = (look, decision.action)
        outcomes.append(Outcome(first[0] if first else None, first[1] if first else None, flagged))
    return outcomes
