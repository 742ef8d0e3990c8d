"""Where the normal approximation breaks (issue 12's degenerate statistics): an empty cell, an
arm without spread, rare events, a negative or enormous baseline. Golden values from scipy,
statsmodels and the formulas by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats import proportion as smp  # a module: pytest would collect test_* names

from analysis.comparison import Alternative
from analysis.decision import decide
from analysis.degenerate import fisher_exact_p, too_few_events
from analysis.sequential import rho_for_runs, sequential_test
from analysis.significance import fixed_test, two_proportion_z_test, welch_t_test
from analysis.spec import (
    DEFAULT_MIN_EVENTS,
    ArmSpec,
    ExperimentSpec,
    Guardrail,
    PrimaryMetric,
)
from analysis.stats import ArmData, MeanStats, ProportionStats
from analysis.units import RateOverUnits

ALTERNATIVES: list[Alternative] = ["two-sided", "greater", "less"]
SM_ALTERNATIVE = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}
SCIPY_ALTERNATIVE = {"two-sided": "two-sided", "greater": "greater", "less": "less"}

# The issue's case: a candidate with no success in 100 runs against 57 in 1,900.
BASE, CAND = ProportionStats(1900, 57), ProportionStats(100, 0)


def _fisher(b: ProportionStats, c: ProportionStats, alternative: Alternative) -> float:
    table = [[c.successes, c.n - c.successes], [b.successes, b.n - b.successes]]
    return float(sps.fisher_exact(table, alternative=SCIPY_ALTERNATIVE[alternative]).pvalue)


def test_the_issues_empty_cell_is_fishers_exact_test_not_a_rollback() -> None:
    # Before: the Wald statistic used the baseline's variance alone, z ≈ 7.7, "rolls back".
    result = fixed_test(BASE, CAND)
    assert result.ok
    assert result.method == "fisher_exact"
    assert result.adjustment == "agresti_caffo"
    assert result.p_value == pytest.approx(0.113258219820563, rel=1e-9)  # scipy, below
    assert result.p_value == pytest.approx(_fisher(BASE, CAND, "two-sided"), rel=1e-9)
    assert not result.significant
    assert result.effect == pytest.approx(-0.03)  # the observed difference stays the effect
    # the interval is Agresti–Caffo's
    low, high = smp.confint_proportions_2indep(0, 100, 57, 1900, method="agresti-caffo")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-10)


def test_the_issues_empty_cell_in_the_sequential_test_is_agresti_caffo_by_hand() -> None:
    rho = rho_for_runs(10_000, 0.05)
    assert rho is not None
    pb, pc = 58 / 1902, 1 / 102  # one success and one failure added to each arm
    variance = pb * (1 - pb) / 1902 + pc * (1 - pc) / 102
    z = (pc - pb) / math.sqrt(variance)
    v = (1902 + 102) * rho**2
    p = min(1.0, math.sqrt(1 + v) * math.exp(-z * z * v / (2 * (1 + v))))
    result = sequential_test(BASE, CAND)
    assert result.adjustment == "agresti_caffo"
    assert result.p_value == pytest.approx(p, rel=1e-10)
    assert result.p_value == pytest.approx(0.4911, abs=1e-4)  # was 2.4e-8
    assert not result.significant
    half = math.sqrt(variance) * math.sqrt(2 * (1 + v) / v * math.log(math.sqrt(1 + v) / 0.05))
    assert (result.ci_low, result.ci_high) == pytest.approx((pc - pb - half, pc - pb + half))


def test_decide_does_not_roll_back_on_the_issues_empty_cell() -> None:
    spec = ExperimentSpec(
        baseline=ArmSpec("v1", 0.95),
        candidates=(ArmSpec("v2", 0.05),),
        primary=PrimaryMetric(name="converted", mde=0.2, mde_relative=True),
    )
    data = {
        "v1": ArmData(1900, {"converted": BASE}),
        "v2": ArmData(100, {"converted": CAND}),
    }
    for method in ("sequential", "fixed"):
        d = decide(dataclasses.replace(spec, method=method), data)
        assert d.action == "continue"
        assert d.codes == ("primary_not_evaluable",)  # 2.85 expected events < 10
        assert "(too few events)" in d.summary
        # and with the event minimum off, the test valid there does not roll back either
        off = decide(dataclasses.replace(spec, method=method, min_events=0), data)
        assert off.action == "continue"


@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize(
    ("b", "c"),
    [
        (ProportionStats(1900, 57), ProportionStats(100, 0)),
        (ProportionStats(40, 0), ProportionStats(35, 6)),
        (ProportionStats(12, 12), ProportionStats(15, 9)),
        (ProportionStats(300, 299), ProportionStats(20, 20)),
        (ProportionStats(7, 0), ProportionStats(9, 0)),  # both empty: a degenerate table
        (ProportionStats(50_000, 120), ProportionStats(2_000, 0)),
    ],
)
def test_fisher_matches_scipy(
    b: ProportionStats, c: ProportionStats, alternative: Alternative
) -> None:
    assert fisher_exact_p(b, c, alternative) == pytest.approx(
        _fisher(b, c, alternative), rel=1e-9, abs=1e-15
    )


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_an_empty_cell_with_a_margin_is_the_agresti_caffo_test_of_statsmodels(
    alternative: Alternative,
) -> None:
    b, c = ProportionStats(800, 40), ProportionStats(150, 0)
    result = two_proportion_z_test(b, c, alternative=alternative, null=-0.01)
    ref = smp.test_proportions_2indep(
        0, 150, 40, 800, value=-0.01, method="agresti-caffo", compare="diff",
        alternative=SM_ALTERNATIVE[alternative],
    )  # fmt: skip
    assert result.method == "agresti_caffo"
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_a_huge_table_with_an_empty_cell_uses_agresti_caffo_not_an_endless_sum() -> None:
    b, c = ProportionStats(10**9, 4 * 10**8), ProportionStats(10**8, 0)
    result = fixed_test(b, c)
    assert result.method == "agresti_caffo"  # the support has 10⁸ values: exact adds nothing
    assert result.significant


# ---- a numeric arm without spread -----------------------------------------------------------

ZEROS = MeanStats.from_values([0.0] * 5)  # five runs that cost nothing
rng = np.random.default_rng(12)
SPREAD_VALUES = rng.normal(0.5, 1.0, 50)
SPREAD = MeanStats.from_values(SPREAD_VALUES)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_an_arm_without_spread_gets_students_pooled_variance(alternative: Alternative) -> None:
    result = welch_t_test(ZEROS, SPREAD, alternative=alternative)
    assert SPREAD.std is not None
    ref = sps.ttest_ind_from_stats(
        SPREAD.mean, SPREAD.std, 50, 0.0, 0.0, 5, equal_var=True, alternative=alternative
    )
    assert result.method == "student_t"
    assert result.adjustment == "pooled_variance"
    assert result.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    interval = sps.ttest_ind(
        SPREAD_VALUES, np.zeros(5), equal_var=True, alternative=alternative
    ).confidence_interval(0.95)
    for ours, theirs in ((result.ci_low, interval.low), (result.ci_high, interval.high)):
        assert ours is None if math.isinf(theirs) else ours == pytest.approx(theirs, rel=1e-9)


def test_a_zero_variance_arm_alone_is_not_evidence() -> None:
    # Welch with v_b = 0 would be a one-sample test of the candidate against 0: t ≈ 3.8
    welch_alone = SPREAD.mean / (SPREAD.std / math.sqrt(50))  # type: ignore[operator]
    assert welch_alone > 3
    for result in (welch_t_test(ZEROS, SPREAD), sequential_test(ZEROS, SPREAD)):
        assert result.adjustment == "pooled_variance"
        assert not result.significant


def test_the_sequential_test_uses_the_pooled_variance_by_hand() -> None:
    assert SPREAD.variance is not None
    pooled = SPREAD.variance * 49 / 53
    variance = pooled / 5 + pooled / 50
    z = SPREAD.mean / math.sqrt(variance)  # type: ignore[operator]
    rho = 0.05
    v = 55 * rho**2
    p = min(1.0, math.sqrt(1 + v) * math.exp(-z * z * v / (2 * (1 + v))))
    assert sequential_test(ZEROS, SPREAD, rho=rho).p_value == pytest.approx(p, rel=1e-10)


# ---- rare events ----------------------------------------------------------------------------


def test_too_few_events_is_the_smaller_arms_expected_count_of_the_rarer_outcome() -> None:
    # pooled 30/1000 = 3 %; the smaller arm has 200 runs: 6 expected events
    b, c = ProportionStats(800, 24), ProportionStats(200, 6)
    assert too_few_events(b, c, 6.01)
    assert not too_few_events(b, c, 6.0)
    assert not too_few_events(b, c, 0)
    # the rarer outcome may be the failure: 97 % success is 3 % failure
    assert too_few_events(ProportionStats(800, 776), ProportionStats(200, 194), 10)
    # pooled, not observed: no success at all against 30 % has plenty of expected events
    assert not too_few_events(ProportionStats(1000, 300), ProportionStats(1000, 0), 10)
    assert DEFAULT_MIN_EVENTS == 10


@pytest.mark.parametrize("test", [sequential_test, fixed_test, two_proportion_z_test])
def test_below_the_minimum_a_proportion_gives_a_reason_and_keeps_its_effect(test: object) -> None:
    b, c = ProportionStats(800, 24), ProportionStats(200, 2)
    result = test(b, c, min_events=10)  # type: ignore[operator]
    assert result.reason == "too_few_events"
    assert result.p_value is None
    assert result.effect == pytest.approx(0.01 - 0.03)
    assert test(b, c).ok  # type: ignore[operator]
    assert test(b, c, min_events=-1).reason == "invalid_parameter"  # type: ignore[operator]


def test_a_guardrail_with_too_few_events_holds_when_not_worse_and_blocks_when_worse() -> None:
    errors = Guardrail(name="errors", direction="decrease", margin=0.0)
    spec = ExperimentSpec(
        baseline=ArmSpec("v1", 0.5),
        candidates=(ArmSpec("v2", 0.5),),
        primary=PrimaryMetric(name="ok", mde=0.01),
        guardrails=(errors,),
    )

    def arm(ok: int, errs: int) -> ArmData:
        metrics = {"ok": ProportionStats(5000, ok), "errors": ProportionStats(5000, errs)}
        return ArmData(5000, metrics)

    fewer = decide(spec, {"v1": arm(4400, 4), "v2": arm(4600, 2)})
    assert fewer.action == "promote"
    more = decide(spec, {"v1": arm(4400, 2), "v2": arm(4600, 5)})
    assert more.action == "continue"
    assert more.codes == ("guardrail_not_evaluable",)
    assert "(too few events)" in more.summary


def test_a_rate_over_too_few_units_holds_when_not_worse_and_blocks_when_worse() -> None:
    # Users who ran several times: the success rate is a ratio over units, and with a failure
    # or two among them it rests on too few effective units to test (the demo's success
    # guardrail, 2 failures in 4,242 runs against none): a candidate that is not worse holds.
    success = Guardrail(name="success", direction="increase", margin=0.0)
    spec = ExperimentSpec(
        baseline=ArmSpec("v1", 0.5),
        candidates=(ArmSpec("v2", 0.5),),
        primary=PrimaryMetric(name="ok", mde=0.01),
        guardrails=(success,),
    )

    def arm(ok: int, failures: int) -> ArmData:
        users, runs = 2000, 4000  # two runs each
        rate = 1 - failures / runs
        # linearised per-user values: mean 0 spread as failures make it, here a small m2
        m2 = failures * (1 / 2) ** 2
        metrics: dict[str, MeanStats | ProportionStats] = {
            "ok": ProportionStats(runs, ok),
            "success": RateOverUnits.over_units(users, rate, m2, float(users)),
        }
        return ArmData(runs, metrics)

    better = decide(spec, {"v1": arm(1600, 2), "v2": arm(1900, 0)})
    assert better.action == "promote", better.summary
    worse = decide(spec, {"v1": arm(1600, 0), "v2": arm(1900, 2)})
    assert worse.action == "continue"
    assert worse.codes == ("guardrail_not_evaluable",)
    assert "(too few units)" in worse.summary


# ---- the relative effect's baseline ---------------------------------------------------------


def test_a_negative_baseline_falling_reads_as_a_fall() -> None:
    b = MeanStats.from_values([-9.0, -10.0, -11.0, -10.0])
    c = MeanStats.from_values([-19.0, -20.0, -21.0, -20.0])
    result = welch_t_test(b, c)
    # (m_c − m_b)/|m_b| = (−20 + 10)/10 = −100 %, not −20/−10 − 1 = +100 %
    assert result.relative_effect == pytest.approx(-1.0)
    var_b, var_c = (2 / 3) / 4, (2 / 3) / 4
    rel_se = math.sqrt(var_c / 100 + 400 * var_b / 10_000)  # the delta method, signs squared
    assert result.relative_std_error == pytest.approx(rel_se)
    assert result.relative_ci_high is not None
    assert result.relative_ci_high < 0
    # a relative guardrail on a lower-is-better metric sees the fall as an improvement
    worse = welch_t_test(b, c, alternative="greater", null=0.05, scale="relative")
    assert worse.statistic is not None
    assert worse.statistic < -10  # far on the good side
    assert not worse.significant


def test_values_near_1e150_have_a_relative_effect_not_a_zero_baseline() -> None:
    base = [1.0 + 0.01 * i for i in range(10)]
    cand = [1.05 + 0.01 * i for i in range(10)]
    unit = welch_t_test(MeanStats.from_values(base), MeanStats.from_values(cand), scale="relative")
    huge = welch_t_test(
        MeanStats.from_values([x * 1e150 for x in base]),
        MeanStats.from_values([x * 1e150 for x in cand]),
        scale="relative",
    )
    assert huge.reason == "ok"  # was "baseline_zero": m_b⁴ overflowed
    # a relative effect does not depend on the unit: the same figures as at scale 1
    assert huge.relative_effect == pytest.approx(unit.relative_effect, rel=1e-12)
    assert huge.relative_effect == pytest.approx(0.05 / 1.045, rel=1e-12)  # by hand
    assert huge.relative_std_error == pytest.approx(unit.relative_std_error, rel=1e-9)
    assert huge.p_value == pytest.approx(unit.p_value, rel=1e-9)
