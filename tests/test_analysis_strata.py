"""Ramp steps as strata (``analysis.strata``): golden values computed by hand, Simpson's paradox
undone, and the evaluator's path over stored rows."""

from __future__ import annotations

import math

import pytest

from analysis import ArmSpec, ExperimentSpec, MeanStats, PrimaryMetric, ProportionStats, decide
from analysis.strata import arm_data_over_steps, stratify
from analysis.units import MeanOverUnits, RateOverUnits, UnitStats, effective_units
from control_plane.experiments.results import unit_data_of
from control_plane.store.tables import ArmUnitStatRow

# A ramp while the world drifts: the baseline converts 12 % in step 0 and 8 % in step 1, and so
# does the candidate; its share grows from 10 % to 50 %.
STEP0 = {"A": {"conv": ProportionStats(900, 108)}, "B": {"conv": ProportionStats(100, 12)}}
STEP1 = {"A": {"conv": ProportionStats(500, 40)}, "B": {"conv": ProportionStats(500, 40)}}
W0, W1 = 900 * 100 / 1000, 500 * 500 / 1000  # Cochran–Mantel–Haenszel weights: 90 and 250


def _spec(share: float = 0.5) -> ExperimentSpec:
    return ExperimentSpec(
        baseline=ArmSpec("A", 1 - share),
        candidates=(ArmSpec("B", share),),
        primary=PrimaryMetric(name="conv", kind="proportion", mde=0.1, mde_relative=True),
        min_runs_per_arm=10,
        method="fixed",
    )


def test_one_step_is_returned_unchanged() -> None:
    combined = stratify([STEP0], baseline="A", arms=("A", "B"))
    assert combined == {"A": {"conv": ProportionStats(900, 108)}, "B": STEP0["B"]}
    assert stratify([], baseline="A", arms=("A", "B")) == {}


def test_pooling_a_drifting_ramp_invents_an_effect_that_strata_do_not() -> None:
    pooled = {arm: {"conv": STEP0[arm]["conv"] + STEP1[arm]["conv"]} for arm in ("A", "B")}
    pooled_a, pooled_b = pooled["A"]["conv"].mean, pooled["B"]["conv"].mean
    assert pooled_a is not None and pooled_b is not None
    assert pooled_b - pooled_a == pytest.approx(52 / 600 - 148 / 1400)  # −1.9 points: Simpson
    combined = stratify([STEP0, STEP1], baseline="A", arms=("A", "B"))
    a, b = combined["A"]["conv"], combined["B"]["conv"]
    assert isinstance(a, RateOverUnits) and isinstance(b, RateOverUnits)
    w0, w1 = W0 / (W0 + W1), W1 / (W0 + W1)
    assert a.mean == pytest.approx(w0 * 0.12 + w1 * 0.08)
    assert b.mean == pytest.approx(a.mean)
    # Every observation still counts as n; the spread carries the weights' variance.
    assert (a.n, b.n) == (1400, 600)
    var_a = w0**2 * 0.12 * 0.88 / 900 + w1**2 * 0.08 * 0.92 / 500
    var_b = w0**2 * 0.12 * 0.88 / 100 + w1**2 * 0.08 * 0.92 / 500
    assert a.variance is not None and b.variance is not None
    assert a.variance / a.n == pytest.approx(var_a)
    assert b.variance / b.n == pytest.approx(var_b)
    # The test then reads an effect of 0 with the stratified standard error.
    data = arm_data_over_steps(
        {0: _units(STEP0), 1: _units(STEP1)}, baseline="A", arms=("A", "B"), step=1
    )
    result = decide(_spec(), data).result("B", "conv")
    assert result is not None and result.comparison is not None
    comparison = result.comparison
    assert comparison.effect == pytest.approx(0.0, abs=1e-12)
    assert comparison.ci_high is not None and comparison.effect is not None
    half_width = comparison.ci_high - comparison.effect
    # Welch's t on the combined arms: a quantile between z's and t's at 500 degrees of freedom.
    se = math.sqrt(var_a + var_b)
    assert 1.959964 * se < half_width < 1.964729 * se


def test_means_combine_with_the_same_weights() -> None:
    values = {
        0: {"A": [1.0, 2.0, 3.0], "B": [2.0, 4.0]},
        1: {"A": [5.0, 7.0], "B": [5.0, 6.0, 7.0]},
    }
    s0, s1 = (
        {arm: {"lat": MeanStats.from_values(v)} for arm, v in values[s].items()} for s in (0, 1)
    )
    combined = stratify([s0, s1], baseline="A", arms=("A", "B"))
    w0, w1 = 3 * 2 / 5, 2 * 3 / 5  # equal: 1.2 each
    w0, w1 = w0 / (w0 + w1), w1 / (w0 + w1)
    b = combined["B"]["lat"]
    assert type(b) is MeanOverUnits
    assert effective_units(b) == 5  # one run per unit: every observation is a unit
    assert b.mean == pytest.approx(w0 * 3.0 + w1 * 6.0)
    assert b.variance is not None
    assert b.variance / b.n == pytest.approx(w0**2 * 2.0 / 2 + w1**2 * 1.0 / 3)


def test_a_step_without_both_arms_compares_nothing_and_is_left_out() -> None:
    lonely = {"A": {"conv": ProportionStats(300, 30)}}  # the candidate had no traffic yet
    combined = stratify([lonely, STEP1], baseline="A", arms=("A", "B"))
    assert combined["A"]["conv"].mean == pytest.approx(0.08)
    assert combined["A"]["conv"].n == 500


Units = dict[str, dict[str, tuple[str, UnitStats]]]


def _units(step: dict[str, dict[str, ProportionStats]]) -> Units:
    """One run per user: the store's sums over units of a proportion."""
    out: Units = {}
    for arm, metrics in step.items():
        for metric, p in metrics.items():
            sums = UnitStats(p.n, p.n, p.successes, p.n, p.successes, p.successes)
            out.setdefault(arm, {})[metric] = ("proportion", sums)
            out[arm]["success"] = ("proportion", UnitStats(p.n, p.n, p.n, p.n, p.n, p.n))
    return out


def _rows(step: int, units: Units) -> list[ArmUnitStatRow]:
    return [
        ArmUnitStatRow(
            experiment_id=1,
            step=step,
            arm=arm,
            metric=metric,
            kind=kind,
            units=s.units,
            sum_n=s.sum_n,
            sum_s=s.sum_s,
            sum_nn=s.sum_nn,
            sum_ss=s.sum_ss,
            sum_sn=s.sum_sn,
        )
        for arm, metrics in units.items()
        for metric, (kind, s) in metrics.items()
    ]


def test_the_evaluators_rows_go_through_the_strata() -> None:
    rows = _rows(0, _units(STEP0)) + _rows(1, _units(STEP1))
    data = unit_data_of(rows, arms=["A", "B"], step=1)
    # Users and runs are the current step's (the sample ratio check reads them)...
    assert (data["A"].users, data["B"].users, data["A"].runs) == (500, 500, 500)
    # ...and the metric is combined over the steps.
    assert data["A"].metrics["conv"].mean == pytest.approx(data["B"].metrics["conv"].mean)
    # Sums no sample can have leave that arm's metric out, never raise.
    damaged = UnitStats(10, 10.0, 5.0, 10.0, math.inf, 5.0)
    bad = _rows(1, {"B": {"conv": ("proportion", damaged)}})
    data = unit_data_of(_rows(0, _units(STEP0)) + bad, arms=["A", "B"], step=1)
    assert "conv" not in data["B"].metrics
