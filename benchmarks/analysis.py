"""``analysis.decide`` under continuous monitoring, on the traffic the product gets.

    python -m benchmarks.analysis            # a table
    python -m benchmarks.analysis --json     # one JSON object
    python -m benchmarks.analysis --quick    # a few experiments: checks the benchmark works

Every scenario is simulated by ``benchmarks.scenarios`` through the evaluator's own path (sums
over users per ramp step → ``analysis.strata.arm_data_over_steps`` → ``analysis.decide``), 1,000
experiments each decided after every one of 50 looks, with a fixed seed:

- ``aa_repeat_users``: runs per user 1 + NegBin (mean 5, heavy-tailed), per-user conversion
  Beta with within-user correlation 0.2; also the sample ratio check's false halts;
- ``aa_ramp_drift``: the candidate ramped 5 → 25 → 50 % while the baseline's conversion
  drifts 12 % → 8 %, steps combined by ``analysis.strata``;
- ``aa_small_share_rare``: a 5 % candidate share, a 3 % event rate;
- ``aa_guardrails_margin0``: three margin-0 guardrails beside the primary metric;
- ``aa_fixed_peeked``: ``method: fixed`` evaluated at every look (it holds before its planned
  size and is read once at it).

A false decision is any look deciding promote or roll back with no true difference; each rate
has a Clopper–Pearson 95 % interval, and the bar is its upper end ≤ alpha + 0.01. **Power**:
the candidate converts 20 % less (10 % → 8 %), one run per user: users per arm at the first
rollback (median, quartiles; issue 12's bar is ≤ 1.3× the 3,300 measured before it). **Cost**:
one ``decide`` on arms of 10 million runs and of 1,000: the statistics are sufficient, so both
take the same fraction of a millisecond.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
from scipy import stats as sps

from analysis import (
    ArmData,
    ArmSpec,
    ExperimentSpec,
    Guardrail,
    MeanStats,
    PrimaryMetric,
    ProportionStats,
    decide,
    runs_for_proportion,
)
from benchmarks import scenarios
from benchmarks.report import report, share
from benchmarks.scenarios import LOOKS, Scenario

__all__ = ["SCENARIOS", "decide_ms", "main", "measure"]

ALPHA = 0.05
RATE = 0.10
WORSE_RATE = 0.08  # 20 % worse in relative terms
SPEC = ExperimentSpec(
    baseline=ArmSpec("A", 0.5),
    candidates=(ArmSpec("B", 0.5),),
    primary=PrimaryMetric(name="conversion", kind="proportion", mde=0.2, mde_relative=True),
    alpha=ALPHA,
    min_runs_per_arm=100,
    method="sequential",  # ρ from the default tuning_runs
    srm_method="sequential",  # as control_plane.experiments.results.spec_of sets it
)
_FLAT = (0,) * LOOKS
_GUARDS = ("latency_s", "cost_usd", "tokens")
_RAMP = (0,) * 17 + (1,) * 17 + (2,) * 16


def _margin0(name: str) -> Guardrail:
    return Guardrail(name=name, kind="mean", direction="decrease", margin=0.0)


SCENARIOS = (
    Scenario("aa_repeat_users", SPEC, 400, (0.5,), _FLAT, (RATE,) * LOOKS, 5.0, 0.2),
    Scenario(
        "aa_ramp_drift",
        SPEC,
        400,
        (0.05, 0.25, 0.5),
        _RAMP,
        tuple(float(r) for r in np.linspace(0.12, 0.08, LOOKS)),
    ),
    Scenario("aa_small_share_rare", SPEC, 1000, (0.05,), _FLAT, (0.03,) * LOOKS),
    Scenario(
        "aa_guardrails_margin0",
        dataclasses.replace(SPEC, guardrails=tuple(_margin0(g) for g in _GUARDS)),
        400,
        (0.5,),
        _FLAT,
        (RATE,) * LOOKS,
        guardrails=_GUARDS,
    ),
    Scenario(
        "aa_fixed_peeked",
        dataclasses.replace(SPEC, method="fixed"),
        400,
        (0.5,),
        _FLAT,
        (RATE,) * LOOKS,
    ),
)
POWER = Scenario("power", SPEC, 400, (0.5,), _FLAT, (RATE,) * LOOKS, lift=WORSE_RATE / RATE - 1)


def _ci95(hits: int, n: int) -> list[float]:
    """Clopper–Pearson 95 % interval of a binomial share."""
    ci = sps.binomtest(hits, n).proportion_ci(0.95, method="exact")
    return [round(float(ci.low), 4), round(float(ci.high), 4)]


def _big_data(n: int) -> dict[str, ArmData]:
    """Two identical arms of n runs with a conversion and a latency: the slowest path of
    ``decide`` (every test computed, "continue" with its planning hint)."""
    conversion = ProportionStats(n, n // 10)
    latency = MeanStats(n, 3.0 * n, (n - 1) * 0.36 + 9.0 * n)  # mean 3.0 s, sd 0.6 s
    metrics: dict[str, MeanStats | ProportionStats] = {"conversion": conversion, "lat": latency}
    return {"A": ArmData(n, metrics), "B": ArmData(n, metrics)}


def decide_ms(reps: int) -> dict[int, float]:
    """Median ms of one ``decide`` (primary + one guardrail), 10M and 1k runs interleaved."""
    latency = Guardrail(
        name="lat", kind="mean", direction="decrease", margin=0.05, margin_relative=True
    )
    spec = dataclasses.replace(SPEC, guardrails=(latency,))
    sizes = (10_000_000, 1_000)
    data = {n: _big_data(n) for n in sizes}
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for n in sizes:
        for _ in range(20):  # warm-up
            decide(spec, data[n])
    gc.collect()
    for _ in range(reps):
        for n in sizes:
            start = time.perf_counter()
            decision = decide(spec, data[n])
            times[n].append((time.perf_counter() - start) * 1e3)
            if decision.action != "continue":
                raise RuntimeError(f"identical arms decided {decision.action}: {decision.summary}")
    return {n: statistics.median(t) for n, t in times.items()}


def measure(quick: bool = False, seed: int = 20261203) -> dict[str, Any]:
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    aa_n = 40 if quick else 1000
    power_n = 20 if quick else 500
    out: dict[str, Any] = {"alpha": ALPHA, "aa_experiments": aa_n, "power_experiments": power_n}
    targets: dict[str, bool] = {}
    for sc in SCENARIOS:
        outcomes = scenarios.run(rng, sc, aa_n)
        hits = sum(o.look is not None for o in outcomes)
        ci = _ci95(hits, aa_n)
        out[f"{sc.name}_false_decision_rate"] = share(hits, aa_n)
        out[f"{sc.name}_false_decision_rate_ci95"] = ci
        targets[f"{sc.name}_within_alpha"] = ci[1] <= ALPHA + 0.01
        if sc.name == "aa_repeat_users":
            halts = sum(o.srm_flagged for o in outcomes)
            out["srm_false_halt_rate_repeat_users"] = share(halts, aa_n)
            out["srm_false_halt_rate_repeat_users_ci95"] = _ci95(halts, aa_n)
            targets["srm_false_halts_within_1pct"] = share(halts, aa_n) <= 0.01
    power = scenarios.run(rng, POWER, power_n)
    per_look = POWER.users_per_look * POWER.shares[0]
    runs = [per_look * (o.look + 1) for o in power if o.action == "rollback" and o.look is not None]
    wrong = sum(o.action == "promote" for o in power)
    median = float(statistics.median(runs)) if runs else None
    ms = decide_ms(20 if quick else 300)
    fixed = runs_for_proportion(baseline_rate=RATE, mde=WORSE_RATE - RATE, alpha=ALPHA)
    out |= {
        "power_runs_to_rollback_median": median,
        "power_runs_to_rollback_p25": float(np.percentile(runs, 25)) if runs else None,
        "power_runs_to_rollback_p75": float(np.percentile(runs, 75)) if runs else None,
        "power_never_rolled_back_share": share(power_n - len(runs) - wrong, power_n),
        "power_promoted_worse_share": share(wrong, power_n),
        "power_fixed_horizon_runs_per_arm": fixed.baseline_runs,
        "analysis_ms_10m_runs": ms[10_000_000],
        "analysis_ms_1k_runs": ms[1_000],
    }
    targets |= {
        # Before users were the unit (one run per user, the same test): 3,300 runs per arm.
        "power_within_1_3x_of_3300": median is not None and median <= 1.3 * 3300,
        "power_never_promotes_worse": wrong == 0,
        "analysis_under_10ms": ms[10_000_000] < 10.0,
        "analysis_cost_flat_in_runs": 0.5 <= ms[10_000_000] / ms[1_000] <= 2.0,
    }
    out["targets"] = targets
    out["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": importlib.metadata.version("numpy"),
        "scipy": importlib.metadata.version("scipy"),
    }
    out["notes"] = [
        f"A/A: {aa_n} experiments per scenario x {LOOKS} looks, each look's decide() through "
        "the evaluator's path (benchmarks.scenarios); a false decision is any look deciding "
        "promote or rollback; ci95 is Clopper–Pearson; bar: upper end <= alpha + 0.01",
        "aa_repeat_users: 400 users/look, 1 + NegBin runs (mean 5, shape 0.5), Beta "
        "conversion (mean 10 %, ICC 0.2); aa_ramp_drift: 400 users/look, share 5/25/50 % over "
        "looks 0-16/17-33/34-49, conversion 12 % -> 8 % linearly; aa_small_share_rare: 1,000 "
        "users/look, 5 % share, 3 % events; aa_guardrails_margin0: three mean guardrails, "
        "margin 0 (Holm across them); aa_fixed_peeked: method fixed at every look (holds until "
        "its planned size, read once there)",
        f"power: {power_n} experiments, {RATE:.0%} -> {WORSE_RATE:.0%}, one run per user, 200 "
        "users per arm per look; runs_to_rollback are users (= runs) per arm at the first look "
        "deciding rollback, over the experiments rolled back within the horizon; "
        "power_fixed_horizon_runs_per_arm is one fixed test at 80 % power, for scale",
        "analysis_ms: median of single decide() calls (conversion + a latency guardrail, two "
        "identical arms: every test and the planning hint computed), 10M and 1k interleaved",
        f"seed {seed}; whole benchmark {time.perf_counter() - start:.1f} s",
    ]
    if quick:
        out["notes"].append("--quick: too few experiments for the rates to mean much")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analysis", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a few experiments (smoke test)")
    parser.add_argument("--seed", type=int, default=20261203, help="random seed")
    args = parser.parse_args(argv)
    print(report(measure(quick=args.quick, seed=args.seed), as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
