"""CUPED through the evaluator's path: false decisions stay under alpha, decisions come sooner.

    python -m benchmarks.cuped            # a table
    python -m benchmarks.cuped --json     # one JSON object
    python -m benchmarks.cuped --quick    # a few experiments: checks the benchmark works

Each experiment draws users in 50 looks (numpy, fixed seeds). A user u has a standardised level
z_u; its pre-exposure covariate is X_u = z_u (or 0 for the share without history), and each of
its runs has the value 1 + σ·(ρ·z_u + √(1 − ρ²)·e_u) (+ noise per run for repeat users), so a
user who runs once has a value correlated ρ with X (CUPED's variance reduction is then ρ²).
After every look the arms' sums over users (with ΣX, ΣX², ΣXS, ΣXN, covered: what
``control_plane.experiments.stats`` keeps) go through ``analysis.cuped.cuped_arm_data`` (what
``control_plane.experiments.results.cuped_data_of`` hands the store's rows to) and
``analysis.decide``, exactly as the evaluator does with ``cuped: true``; the same draws are also
decided without CUPED (``analysis.strata.arm_data_over_steps``), so the two are paired.

Figures: the A/A false-decision rate with CUPED on (Clopper–Pearson 95 % interval), the variance
reduction CUPED reports at the last look, and with a true lift the users per arm at the first
promotion with and without CUPED (median of each, and the ratio of medians).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from analysis import ArmSpec, ExperimentSpec, PrimaryMetric, decide
from analysis.cuped import cuped_arm_data
from analysis.decision import SRMStep
from analysis.strata import StepUnits, arm_data_over_steps
from analysis.units import UnitStats
from benchmarks.scenarios import LOOKS, _within_steps

__all__ = ["SCENARIOS", "CupedScenario", "Experiment", "main", "measure", "simulate"]

ARMS = ("A", "B")
ALPHA = 0.05
METRIC = "rating"
SIGMA = 0.5
_SUMS = 11  # units, ΣN, ΣS, ΣN², ΣS², ΣSN, ΣX, ΣX², ΣXS, ΣXN, covered
SPEC = ExperimentSpec(
    baseline=ArmSpec("A", 0.5),
    candidates=(ArmSpec("B", 0.5),),
    primary=PrimaryMetric(name=METRIC, kind="mean", mde=0.05, mde_relative=True),
    alpha=ALPHA,
    min_runs_per_arm=100,
    method="sequential",
    srm_method="sequential",  # as control_plane.experiments.results.spec_of sets it
)


@dataclass(frozen=True)
class CupedScenario:
    """``rho``: correlation of a user's value with its covariate; ``covered``: the share of
    users with pre-exposure data; ``mean_runs`` > 1: runs per user 1 + NegBin (heavy-tailed);
    ``shares``/``steps``: a ramp, as in ``benchmarks.scenarios``."""

    name: str
    users_per_look: int
    rho: float = 0.7
    covered: float = 1.0
    mean_runs: float = 1.0
    lift: float = 0.0
    shares: tuple[float, ...] = (0.5,)
    steps: tuple[int, ...] = (0,) * LOOKS


@dataclass(frozen=True)
class Experiment:
    """One experiment decided with and without CUPED: the first deciding look of each
    (``None``: never), its action, and CUPED's variance reduction at the last look."""

    cuped_look: int | None
    cuped_action: str | None
    plain_look: int | None
    plain_action: str | None
    variance_reduction: float | None


_RAMP = (0,) * 17 + (1,) * 17 + (2,) * 16
SCENARIOS = (
    CupedScenario("aa_cuped_one_run", 200),
    CupedScenario("aa_cuped_repeat_users", 200, covered=0.8, mean_runs=5.0),
    CupedScenario("aa_cuped_ramp", 200, covered=0.8, shares=(0.05, 0.25, 0.5), steps=_RAMP),
)
POWER = CupedScenario("power_cuped", 200, lift=0.04)


def _grouped(index: np.ndarray, bins: int, columns: tuple[Any, ...]) -> np.ndarray:
    out = np.empty((bins, _SUMS))
    for k, weights in enumerate(columns):
        out[:, k] = np.bincount(index, weights=weights, minlength=bins)
    return out


def _draw(rng: np.random.Generator, sc: CupedScenario) -> dict[str, np.ndarray]:
    """Metric → sums per look and arm, shape (LOOKS, 2, 11), new users only."""
    users = sc.users_per_look * LOOKS
    look = np.repeat(np.arange(LOOKS), sc.users_per_look)
    share = np.asarray(sc.shares)[np.asarray(sc.steps)][look]
    arm = (rng.random(users) < share).astype(np.int64)
    if sc.mean_runs > 1.0:
        p = 0.5 / (0.5 + sc.mean_runs - 1.0)
        runs = 1.0 + rng.negative_binomial(0.5, p, size=users)
    else:
        runs = np.ones(users)
    z = rng.normal(size=users)
    has = rng.random(users) < sc.covered
    x = np.where(has, z, 0.0)
    level = sc.rho * z + np.sqrt(1.0 - sc.rho**2) * rng.normal(size=users)
    per_run = 1.0 + SIGMA * level + sc.lift * arm
    # a user's total over N runs; repeat users' runs each have their own noise (sd SIGMA / 2)
    total = runs * per_run
    if sc.mean_runs > 1.0:
        total = total + rng.normal(size=users) * np.sqrt(runs) * SIGMA / 2
    index = look * 2 + arm
    bins = LOOKS * 2
    ones, none = np.ones(users), np.zeros(users)
    rating = (ones, runs, total, runs * runs, total * total, total * runs,
              x, x * x, x * total, x * runs, has.astype(float))  # fmt: skip
    # every run succeeds; no covariate for it (left unadjusted: no_pre_data)
    success = (ones, runs, runs, runs * runs, runs * runs, runs * runs,
               none, none, none, none, none)  # fmt: skip
    return {
        m: _grouped(index, bins, columns).reshape(LOOKS, 2, _SUMS)
        for m, columns in (("success", success), (METRIC, rating))
    }


def _unit_stats(row: np.ndarray) -> UnitStats:
    n, s, nn, ss, sn, x, xx, xs, xn = (float(v) for v in row[1:10])
    return UnitStats(int(row[0]), n, s, nn, ss, sn, x, xx, xs, xn, int(row[10]))


def _spec_at(sc: CupedScenario, step: int) -> ExperimentSpec:
    share = sc.shares[step]
    return ExperimentSpec(
        **{**SPEC.__dict__, "baseline": ArmSpec("A", 1 - share),
           "candidates": (ArmSpec("B", share),)}
    )  # fmt: skip


def simulate(rng: np.random.Generator, sc: CupedScenario) -> Experiment:
    """One experiment, every look decided with and without CUPED, as the evaluator would."""
    cum = {m: _within_steps(s, sc.steps) for m, s in _draw(rng, sc).items()}
    finished: dict[int, StepUnits] = {}
    earlier: list[SRMStep] = []
    first: dict[bool, tuple[int, str] | None] = {True: None, False: None}
    reduction: float | None = None
    for look in range(LOOKS):
        step = sc.steps[look]
        current: StepUnits = {
            arm: {m: ("mean" if m == METRIC else "proportion", _unit_stats(c[look, i]))
                  for m, c in cum.items()}
            for i, arm in enumerate(ARMS)
        }  # fmt: skip
        steps = {**finished, step: current}
        spec = _spec_at(sc, step)
        for on in (True, False):
            if first[on] is not None:
                continue
            if on:
                data, reductions = cuped_arm_data(steps, baseline="A", arms=ARMS, step=step)
                reduction = reductions[("B", METRIC)].variance_reduction
            else:
                data = arm_data_over_steps(steps, baseline="A", arms=ARMS, step=step)
            decision = decide(spec, data, earlier_steps=earlier)
            if decision.action in ("promote", "rollback"):
                first[on] = (look, decision.action)
        if first[True] is not None and first[False] is not None:
            break
        if look + 1 < LOOKS and sc.steps[look + 1] != step:
            finished[step] = current
            shares = {"A": 1.0 - sc.shares[step], "B": sc.shares[step]}
            units = {arm: int(cum["success"][look, i, 0]) for i, arm in enumerate(ARMS)}
            earlier.append((units, shares))
    adjusted, plain = first[True], first[False]
    return Experiment(
        adjusted[0] if adjusted else None, adjusted[1] if adjusted else None,
        plain[0] if plain else None, plain[1] if plain else None, reduction,
    )  # fmt: skip


def _ci95(hits: int, n: int) -> list[float]:
    ci = sps.binomtest(hits, n).proportion_ci(0.95, method="exact")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def measure(experiments: int = 1000, power_experiments: int = 300) -> dict[str, Any]:
    """Every figure in the module docstring, as one flat mapping."""
    out: dict[str, Any] = {"alpha": ALPHA, "rho": 0.7, "aa_experiments": experiments}
    for k, sc in enumerate(SCENARIOS):
        rng = np.random.default_rng(20261204 + k)
        runs = [simulate(rng, sc) for _ in range(experiments)]
        decided = sum(r.cuped_look is not None for r in runs)
        plain = sum(r.plain_look is not None for r in runs)
        reductions = [r.variance_reduction for r in runs if r.variance_reduction is not None]
        out[f"{sc.name}_false_decision_rate"] = decided / experiments
        out[f"{sc.name}_false_decision_ci95"] = _ci95(decided, experiments)
        out[f"{sc.name}_false_decision_rate_without_cuped"] = plain / experiments
        out[f"{sc.name}_variance_reduction_median"] = round(statistics.median(reductions), 4)
    rng = np.random.default_rng(20261205)
    runs = [simulate(rng, POWER) for _ in range(power_experiments)]
    per_look = POWER.users_per_look / 2  # users per arm per look

    def users(look: int | None, action: str | None) -> float:
        return per_look * (look + 1) if look is not None and action == "promote" else np.inf

    with_cuped = [users(r.cuped_look, r.cuped_action) for r in runs]
    without = [users(r.plain_look, r.plain_action) for r in runs]
    out["power_experiments"] = power_experiments
    out["power_lift"] = POWER.lift
    out["power_users_to_promote_median_cuped"] = float(np.median(with_cuped))
    out["power_users_to_promote_median_plain"] = float(np.median(without))
    out["power_users_ratio_cuped_to_plain"] = round(
        float(np.median(with_cuped)) / float(np.median(without)), 4
    )
    out["power_promoted_share_cuped"] = float(np.mean(np.isfinite(with_cuped)))
    out["power_promoted_share_plain"] = float(np.mean(np.isfinite(without)))
    out["power_variance_reduction_median"] = round(
        statistics.median(r.variance_reduction for r in runs if r.variance_reduction), 4
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--quick", action="store_true", help="a few experiments")
    args = parser.parse_args(argv)
    figures = measure(20, 20) if args.quick else measure()
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:<50} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
