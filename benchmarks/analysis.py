"""``analysis.decide`` under continuous monitoring: false decisions, power, and cost.

    python -m benchmarks.analysis            # a table
    python -m benchmarks.analysis --json     # one JSON object
    python -m benchmarks.analysis --quick    # a few experiments: checks the benchmark works

Three measurements, all with a fixed seed:

- **A/A**: experiments with no true difference (conversion 10 % in both arms, equal shares),
  each looked at after every one of 50 batches of 200 users per arm, the full ``decide`` at every
  look; the share of experiments that *ever* decide "promote" or "rollback", with the sequential
  method (asymptotic confidence sequences) and with the fixed-horizon z-test peeked the same way.
  Batches are drawn once with numpy; cumulative sums give every look's sufficient statistics.
- **Power**: the candidate converts 20 % less (10 % → 8 %); the runs *per arm* until the
  sequential ``decide`` first says "rollback", over many experiments, and the share never rolled
  back within the 50 batches (10,000 runs per arm).
- **Cost**: one ``decide`` on two arms holding 10 million runs each, and on 1,000 each: the
  statistics are sufficient, so both should take the same fraction of a millisecond.
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
from benchmarks.report import report, share

__all__ = ["aa_rates", "decide_ms", "main", "measure", "runs_to_rollback"]

ALPHA = 0.05
RATE = 0.10
WORSE_RATE = 0.08  # 20 % worse in relative terms
LOOKS = 50
BATCH = 200  # users per arm per batch
SPEC = ExperimentSpec(
    baseline=ArmSpec("A", 0.5),
    candidates=(ArmSpec("B", 0.5),),
    primary=PrimaryMetric(name="conversion", kind="proportion", mde=0.2, mde_relative=True),
    alpha=ALPHA,
    min_runs_per_arm=100,
    method="sequential",  # ρ from the default tuning_runs (10,000 runs for the pair)
)
NAIVE = dataclasses.replace(SPEC, method="fixed")
DECISIVE = ("promote", "rollback")


def _looks(rng: np.random.Generator, experiments: int, rates: tuple[float, float]) -> np.ndarray:
    """Cumulative successes, shape (experiments, 2 arms, LOOKS): every look's statistics."""
    draws = rng.binomial(BATCH, np.array(rates)[None, :, None], size=(experiments, 2, LOOKS))
    return np.cumsum(draws, axis=2)


def _data(successes: np.ndarray, look: int) -> dict[str, ArmData]:
    n = BATCH * (look + 1)
    return {
        arm: ArmData(n, {"conversion": ProportionStats(n, int(successes[i, look]))})
        for i, arm in enumerate(("A", "B"))
    }


def _first(spec: ExperimentSpec, successes: np.ndarray, actions: tuple[str, ...]) -> int | None:
    """The first look whose decision is one of ``actions``, or ``None``."""
    for look in range(LOOKS):
        if decide(spec, _data(successes, look)).action in actions:
            return look
    return None


def _ci95(hits: int, n: int) -> list[float]:
    """Clopper–Pearson 95 % interval of a binomial share."""
    ci = sps.binomtest(hits, n).proportion_ci(0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def aa_rates(rng: np.random.Generator, experiments: int) -> dict[str, tuple[int, int]]:
    """Experiments that ever decided, and of those how many by rollback, per method."""
    cum = _looks(rng, experiments, (RATE, RATE))
    out = {}
    for name, spec in (("sequential", SPEC), ("naive", NAIVE)):
        firsts = [_first(spec, cum[e], DECISIVE) for e in range(experiments)]
        out[name] = (sum(f is not None for f in firsts), experiments)
    return out


def runs_to_rollback(rng: np.random.Generator, experiments: int) -> tuple[list[int], int]:
    """Runs per arm at the first rollback of each experiment that rolled back, and how many
    experiments promoted the worse candidate instead (should be none)."""
    cum = _looks(rng, experiments, (RATE, WORSE_RATE))
    runs, wrong = [], 0
    for e in range(experiments):
        look = _first(SPEC, cum[e], DECISIVE)
        if look is None:
            continue
        if decide(SPEC, _data(cum[e], look)).action == "promote":
            wrong += 1
        else:
            runs.append(BATCH * (look + 1))
    return runs, wrong


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


def measure(quick: bool = False, seed: int = 20240611) -> dict[str, Any]:
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    aa_n = 100 if quick else 1000
    power_n = 60 if quick else 500
    aa = aa_rates(rng, aa_n)
    runs, wrong = runs_to_rollback(rng, power_n)
    ms = decide_ms(20 if quick else 300)
    fixed = runs_for_proportion(baseline_rate=RATE, mde=WORSE_RATE - RATE, alpha=ALPHA)
    seq_hits, naive_hits = aa["sequential"][0], aa["naive"][0]
    seq_ci, naive_ci = _ci95(seq_hits, aa_n), _ci95(naive_hits, aa_n)
    out: dict[str, Any] = {
        "alpha": ALPHA,
        "aa_experiments": aa_n,
        "aa_false_decision_rate_sequential": share(seq_hits, aa_n),
        "aa_false_decision_rate_sequential_ci95": seq_ci,
        "aa_false_decision_rate_naive": share(naive_hits, aa_n),
        "aa_false_decision_rate_naive_ci95": naive_ci,
        "power_experiments": power_n,
        "power_runs_to_rollback_median": float(statistics.median(runs)) if runs else None,
        "power_runs_to_rollback_p25": float(np.percentile(runs, 25)) if runs else None,
        "power_runs_to_rollback_p75": float(np.percentile(runs, 75)) if runs else None,
        "power_never_rolled_back_share": share(power_n - len(runs) - wrong, power_n),
        "power_promoted_worse_share": share(wrong, power_n),
        "power_fixed_horizon_runs_per_arm": fixed.baseline_runs,
        "analysis_ms_10m_runs": ms[10_000_000],
        "analysis_ms_1k_runs": ms[1_000],
    }
    out["targets"] = {
        "aa_sequential_within_alpha": seq_ci[0] <= ALPHA,  # not significantly above alpha
        "aa_naive_above_alpha": naive_ci[0] > ALPHA,
        "analysis_under_10ms": ms[10_000_000] < 10.0,
        "analysis_cost_flat_in_runs": 0.5 <= ms[10_000_000] / ms[1_000] <= 2.0,
    }
    out["machine"] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": importlib.metadata.version("numpy"),
        "scipy": importlib.metadata.version("scipy"),
    }
    out["notes"] = [
        f"A/A: {aa_n} experiments, conversion {RATE:.0%} in both arms, equal shares, a look after "
        f"each of {LOOKS} batches of {BATCH} users per arm; a false decision is any look whose "
        "decide() says promote or rollback; ci95 is Clopper–Pearson",
        "sequential: asymptotic confidence sequence, rho from tuning_runs=10,000 (the default); "
        "naive: the same decide() with method='fixed' (two-proportion z-test) at every look",
        f"power: {power_n} experiments, {RATE:.0%} → {WORSE_RATE:.0%}; runs_to_rollback figures "
        f"are runs PER ARM at the first look deciding rollback (multiples of {BATCH}), over the "
        "experiments rolled back within the horizon; never_rolled_back is the share not rolled "
        f"back within {LOOKS * BATCH:,} runs per arm; power_fixed_horizon_runs_per_arm is what "
        "one fixed-horizon test at 80 % power needs (analysis.power), for scale",
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
    parser.add_argument("--seed", type=int, default=20240611, help="random seed")
    args = parser.parse_args(argv)
    print(report(measure(quick=args.quick, seed=args.seed), as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
