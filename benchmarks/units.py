"""A/A experiments with users who run many times: false decisions and false sample-ratio halts,
analysing runs as units (as before) and users as units (as the evaluator does now).

    python -m benchmarks.units            # a table
    python -m benchmarks.units --json     # one JSON object
    python -m benchmarks.units --quick    # a few experiments: checks the benchmark works

Each experiment assigns 400 new users per look at random to two equal arms (so the arms' user
counts vary binomially, as real assignment does), for 50 looks. A user runs 1 + NegBin times
(mean 5, heavy-tailed: a few users run dozens of times) and converts with a rate of its own
drawn from Beta(0.4, 3.6): mean 10 %, within-user correlation 0.2. There is no difference
between the arms. After every look the arms' sums over users are handed to
``control_plane.experiments.results.unit_data_of``, the function the evaluator uses, and
``analysis.decide`` decides; the run-level analysis pools the same runs as if each were a user.
Reported: the share of experiments that ever promote or roll back, and that ever halt on a
sample ratio mismatch, each with a 95 % Wilson interval.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from typing import Any

import numpy as np
from scipy import stats as sps

from analysis import ArmData, ArmSpec, ExperimentSpec, PrimaryMetric, ProportionStats, decide
from benchmarks.report import report, share
from control_plane.experiments.results import unit_data_of
from control_plane.store.tables import ArmUnitStatRow

__all__ = ["main", "measure", "simulate"]

ALPHA = 0.05
LOOKS = 50
USERS_PER_LOOK = 400
MEAN_RUNS = 5.0
RATE = 0.10
ICC = 0.2
ARMS = ("A", "B")
SPEC = ExperimentSpec(
    baseline=ArmSpec("A", 0.5),
    candidates=(ArmSpec("B", 0.5),),
    primary=PrimaryMetric(name="conversion", kind="proportion", mde=0.2, mde_relative=True),
    alpha=ALPHA,
    min_runs_per_arm=100,
    method="sequential",
    srm_method="sequential",  # as results.spec_of sets it
)
# The analysis before users were the unit: runs pooled, a chi-square sample ratio check.
RUN_SPEC = dataclasses.replace(SPEC, srm_method="chi_square")
_SUMS = ("units", "sum_n", "sum_s", "sum_nn", "sum_ss", "sum_sn")


def _look_sums(rng: np.random.Generator) -> np.ndarray:
    """One look's new users, summed per arm: shape (2 arms, 6 sums) in ``_SUMS`` order."""
    n_users = USERS_PER_LOOK
    # 1 + negative binomial with mean MEAN_RUNS − 1 and a long tail (shape 0.5).
    extra = rng.negative_binomial(0.5, 0.5 / (0.5 + MEAN_RUNS - 1.0), size=n_users)
    runs = 1.0 + extra
    a = RATE * (1.0 - ICC) / ICC
    b = (1.0 - RATE) * (1.0 - ICC) / ICC
    rates = rng.beta(a, b, size=n_users)
    converted = rng.binomial(runs.astype(np.int64), rates).astype(float)
    arm = rng.integers(0, 2, size=n_users)
    out = np.zeros((2, len(_SUMS)))
    for i in range(2):
        n, s = runs[arm == i], converted[arm == i]
        out[i] = (len(n), n.sum(), s.sum(), (n * n).sum(), (s * s).sum(), (s * n).sum())
    return out


def _rows(sums: np.ndarray) -> list[ArmUnitStatRow]:
    rows = []
    for i, arm in enumerate(ARMS):
        values = dict(zip(_SUMS, sums[i].tolist(), strict=True))
        units = int(values.pop("units"))
        for metric in ("success", "conversion"):
            # Every run "succeeds" (the SRM reads the success rows' units).
            metric_sums = dict(values)
            if metric == "success":
                metric_sums.update(sum_s=values["sum_n"], sum_ss=values["sum_nn"])
                metric_sums["sum_sn"] = values["sum_nn"]
            rows.append(
                ArmUnitStatRow(
                    experiment_id=1,
                    step=0,
                    arm=arm,
                    metric=metric,
                    kind="proportion",
                    units=units,
                    **metric_sums,
                )
            )
    return rows


def _run_level(sums: np.ndarray) -> dict[str, ArmData]:
    data = {}
    for i, arm in enumerate(ARMS):
        runs, converted = int(sums[i][1]), int(sums[i][2])
        data[arm] = ArmData(runs, {"conversion": ProportionStats(runs, converted)})
    return data


def simulate(rng: np.random.Generator, experiments: int) -> dict[str, dict[str, int]]:
    """Per analysis (users, runs): experiments that ever decided, and that ever halted on SRM."""
    counts = {unit: {"decided": 0, "srm_halt": 0} for unit in ("users", "runs")}
    for _ in range(experiments):
        total = np.zeros((2, len(_SUMS)))
        seen = {unit: {"decided": False, "srm_halt": False} for unit in counts}
        for _look in range(LOOKS):
            total += _look_sums(rng)
            by_unit = {
                "users": unit_data_of(_rows(total), arms=ARMS, step=0),
                "runs": _run_level(total),
            }
            for unit, data in by_unit.items():
                decision = decide(SPEC if unit == "users" else RUN_SPEC, data)
                if decision.action in ("promote", "rollback"):
                    seen[unit]["decided"] = True
                if decision.srm is not None and decision.srm.flagged:
                    seen[unit]["srm_halt"] = True
        for unit, flags in seen.items():
            for name, hit in flags.items():
                counts[unit][name] += int(hit)
    return counts


def _wilson(hits: int, n: int) -> list[float]:
    z = float(sps.norm.ppf(0.975))
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def measure(quick: bool = False, seed: int = 20261203) -> dict[str, Any]:
    start = time.perf_counter()
    experiments = 20 if quick else 1000
    counts = simulate(np.random.default_rng(seed), experiments)
    out: dict[str, Any] = {"alpha": ALPHA, "experiments": experiments}
    intervals = {}
    for unit, found in counts.items():
        for name, hits in found.items():
            key = f"aa_repeat_users_{name}_rate_by_{unit}"
            out[key] = share(hits, experiments)
            out[f"{key}_ci95"] = intervals[key] = _wilson(hits, experiments)
    out["targets"] = {
        # The bar: the upper end of the interval within alpha + 0.01.
        "decisions_by_users_within_alpha": intervals["aa_repeat_users_decided_rate_by_users"][1]
        <= ALPHA + 0.01,
        "srm_halts_by_users_within_1pct": intervals["aa_repeat_users_srm_halt_rate_by_users"][1]
        <= 0.01 + 0.01,
    }
    out["machine"] = {"cores": os.cpu_count(), "python": platform.python_version()}
    out["notes"] = [
        f"A/A: {experiments} experiments x {LOOKS} looks, {USERS_PER_LOOK} new users per look "
        f"split at random between two equal arms; runs per user 1 + NegBin (mean {MEAN_RUNS}, "
        f"shape 0.5); per-user conversion Beta (mean {RATE}, ICC {ICC}); no true difference",
        "by_users: the evaluator's path (results.unit_data_of over the arms' sums over users, "
        "then analysis.decide, sequential); by_runs: the same runs pooled as if each were a "
        "user, with a chi-square sample ratio check (the analysis before users were the unit); "
        "by_users uses the sequential check of Lindon & Malek (2022), as the evaluator does",
        "decided: ever promote or rollback over the looks; srm_halt: the sample ratio check "
        "ever flagged; ci95 is Wilson's",
        f"seed {seed}; whole benchmark {time.perf_counter() - start:.1f} s",
    ]
    if quick:
        out["notes"].append("--quick: too few experiments for the rates to mean much")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.units", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a few experiments only")
    args = parser.parse_args(argv)
    print(report(measure(quick=args.quick), as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
