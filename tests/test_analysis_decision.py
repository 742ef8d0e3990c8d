"""``decide``: one case per rule, with the codes and the words a person reads."""

from __future__ import annotations

import dataclasses

import pytest

from analysis.decision import decide
from analysis.spec import ArmSpec, ExperimentSpec, Guardrail, MetricSpec, PrimaryMetric
from analysis.stats import ArmData, MeanStats, ProportionStats

SUCCESS = PrimaryMetric(name="success", label="success rate", mde=0.01)
LATENCY = Guardrail(
    name="latency_s", kind="mean", direction="decrease", margin=0.05, margin_relative=True,
    label="latency",
)  # fmt: skip
SPEC = ExperimentSpec(
    baseline=ArmSpec("v3.2", 0.5),
    candidates=(ArmSpec("v3.3", 0.5),),
    primary=SUCCESS,
    guardrails=(LATENCY,),
    min_runs_per_arm=1000,
)


def latency(n: int, mean: float, sd: float) -> MeanStats:
    """Statistics of n values with this mean and sample sd: Σx = n·m, Σx² = (n − 1)s² + n·m²."""
    return MeanStats(n, n * mean, (n - 1) * sd * sd + n * mean * mean) if n else MeanStats()


def arm(runs: int, successes: int, lat: tuple[float, float] = (3.0, 0.6)) -> ArmData:
    return ArmData(
        runs, {"success": ProportionStats(runs, successes), "latency_s": latency(runs, *lat)}
    )


def test_promote_when_the_primary_is_better_and_no_guardrail_regressed() -> None:
    d = decide(SPEC, {"v3.2": arm(5000, 4400), "v3.3": arm(5000, 4600)})
    assert d.action == "promote"
    assert d.winner == "v3.3"
    assert d.codes == ("primary_better",)
    assert d.method == "sequential"
    message = d.reasons[0].message
    assert message.startswith("v3.3's success rate is 4.0 points above v3.2 (92.0 % vs 88.0 %")
    assert "95 % always-valid CI" in message
    assert message.endswith("and no guardrail regressed: promote v3.3.")
    primary = d.result("v3.3", "success")
    assert primary is not None
    assert primary.significant
    assert primary.adjusted_p is not None
    assert primary.comparison is not None
    assert primary.comparison.method == "asymptotic_cs"


def test_guardrail_regression_beyond_its_margin_rolls_back_in_words() -> None:
    guard = Guardrail(name="success", margin=0.01, label="success rate")
    spec = dataclasses.replace(SPEC, guardrails=(guard,), primary=PrimaryMetric(name="latency_s",
                               kind="mean", direction="decrease", mde=0.1))  # fmt: skip
    d = decide(spec, {"v3.2": arm(5000, 4605), "v3.3": arm(5000, 4400)})
    assert d.action == "rollback"
    assert d.codes == ("guardrail_regression",)
    message = d.reasons[0].message
    assert message.startswith("v3.3's success rate is 4.1 points below v3.2 (88.0 % vs 92.1 %; ")
    assert "95 % always-valid bound: at least" in message
    assert message.endswith("points below), beyond the 1-point margin: roll back.")
    assert d.reasons[0].arm == "v3.3"
    assert d.reasons[0].metric == "success"


def test_a_regression_within_the_margin_does_not_roll_back() -> None:
    # latency 2 % higher, margin 5 %: worse, but not beyond the margin
    d = decide(SPEC, {"v3.2": arm(20000, 18000), "v3.3": arm(20000, 18000, (3.06, 0.6))})
    assert d.action == "continue"
    guard = d.result("v3.3", "latency_s")
    assert guard is not None
    assert not guard.significant


def test_a_relative_guardrail_regression_rolls_back() -> None:
    d = decide(SPEC, {"v3.2": arm(5000, 4500), "v3.3": arm(5000, 4510, (3.5, 0.6))})
    assert d.action == "rollback"
    assert d.codes == ("guardrail_regression",)
    assert "beyond the 5 % margin: roll back." in d.summary
    assert "at least" in d.summary
    assert "% above" in d.summary


def test_primary_significantly_worse_rolls_back() -> None:
    d = decide(SPEC, {"v3.2": arm(5000, 4605), "v3.3": arm(5000, 4400)})
    assert d.action == "rollback"
    assert d.codes == ("primary_worse",)
    assert "significantly worse: roll back." in d.summary
    assert "p < 0.001" in d.summary


def test_srm_halts() -> None:
    d = decide(SPEC, {"v3.2": arm(9000, 8100), "v3.3": arm(700, 630)})
    assert d.action == "halt"
    assert d.codes == ("srm",)
    assert d.srm is not None
    assert d.srm.flagged
    assert "Sample ratio mismatch" in d.summary
    assert "halt and investigate" in d.summary


def test_runs_in_an_arm_outside_the_experiment_halt_as_srm() -> None:
    data = {"v3.2": arm(5000, 4500), "v3.3": arm(5000, 4500), "v3.1": arm(12, 10)}
    d = decide(SPEC, data)
    assert d.action == "halt"
    assert d.codes == ("srm",)
    assert "v3.1 received runs but has no configured share" in d.summary


@pytest.mark.parametrize(
    "data",
    [
        {"v3.2": arm(0, 0), "v3.3": arm(0, 0)},
        {"v3.2": arm(3000, 2700), "v3.3": arm(0, 0)},
        {"v3.2": arm(3000, 2700)},
    ],
)
def test_an_arm_without_data_halts(data: dict[str, ArmData]) -> None:
    d = decide(SPEC, data)
    assert d.action == "halt"
    assert "no_data" in d.codes
    assert "v3.3 has no runs: no data to compare; halt." in d.summary


def test_a_required_metric_without_data_halts() -> None:
    no_latency = ArmData(3000, {"success": ProportionStats(3000, 2700)})
    d = decide(SPEC, {"v3.2": arm(3000, 2700), "v3.3": no_latency})
    assert d.action == "halt"
    assert d.codes == ("metric_no_data",)
    assert d.reasons[0].metric == "latency_s"
    assert d.summary == "v3.3 has 3,000 runs but no latency data; halt."


def test_under_the_minimum_continues_and_says_how_many_more() -> None:
    # a huge effect, but too few runs: insufficient data never decides
    d = decide(SPEC, {"v3.2": arm(400, 100), "v3.3": arm(380, 370)})
    assert d.action == "continue"
    assert d.codes == ("below_min_runs", "below_min_runs")
    assert d.reasons[1].message == (
        "v3.3 has 380 runs: 620 more before any decision (minimum 1,000 per arm)."
    )
    primary = d.result("v3.3", "success")
    assert primary is not None
    assert primary.comparison is not None
    assert primary.comparison.significant  # the numbers are there for a dashboard


def test_inconclusive_continues_with_a_planning_hint() -> None:
    d = decide(SPEC, {"v3.2": arm(5000, 4500), "v3.3": arm(5000, 4520)})
    assert d.action == "continue"
    assert d.codes == ("inconclusive",)
    message = d.reasons[0].message
    assert "not significant yet" in message
    # (z₀.₉₇₅ + z₀.₈)² (0.9·0.1 + 0.91·0.09)/0.01² ≈ 13,493, shown to three digits
    assert "at the 1-point MDE a fixed-horizon test needs about 13,500 runs per arm" in message


def test_a_primary_without_spread_cannot_be_tested() -> None:
    d = decide(SPEC, {"v3.2": arm(2000, 2000), "v3.3": arm(2000, 2000)})
    assert d.action == "continue"
    assert d.codes == ("primary_not_evaluable",)
    assert "(zero variance)" in d.summary


def test_a_guardrail_that_cannot_be_evaluated_blocks_promotion() -> None:
    errors = Guardrail(name="errors", direction="decrease", margin=0.1, margin_relative=True)
    spec = dataclasses.replace(SPEC, guardrails=(errors,))
    data = {
        "v3.2": ArmData(5000, {"success": ProportionStats(5000, 4400),
                               "errors": ProportionStats(5000, 0)}),
        "v3.3": ArmData(5000, {"success": ProportionStats(5000, 4600),
                               "errors": ProportionStats(5000, 3)}),
    }  # fmt: skip
    d = decide(spec, data)
    assert d.action == "continue"
    assert d.codes == ("guardrail_not_evaluable",)
    assert "(baseline zero)" in d.summary


def test_an_unevaluable_guardrail_and_an_inconclusive_primary_both_say_so() -> None:
    errors = Guardrail(name="errors", direction="decrease", margin=0.1, margin_relative=True)
    spec = dataclasses.replace(SPEC, guardrails=(errors,))
    data = {
        "v3.2": ArmData(5000, {"success": ProportionStats(5000, 4500),
                               "errors": ProportionStats(5000, 0)}),
        "v3.3": ArmData(5000, {"success": ProportionStats(5000, 4510),
                               "errors": ProportionStats(5000, 3)}),
    }  # fmt: skip
    d = decide(spec, data)
    assert d.action == "continue"
    assert d.codes == ("guardrail_not_evaluable", "inconclusive")


def test_a_guardrail_without_spread_that_is_not_worse_holds() -> None:
    cost = Guardrail(name="cost", kind="mean", direction="decrease", margin=0.0)
    spec = dataclasses.replace(SPEC, guardrails=(cost,))
    flat = MeanStats(5000, 5000 * 0.25, 5000 * 0.0625)  # every run costs 0.25
    data = {
        "v3.2": ArmData(5000, {"success": ProportionStats(5000, 4400), "cost": flat}),
        "v3.3": ArmData(5000, {"success": ProportionStats(5000, 4600), "cost": flat}),
    }
    assert decide(spec, data).action == "promote"


def test_several_candidates_promote_the_best_significant_winner() -> None:
    spec = dataclasses.replace(
        SPEC, candidates=(ArmSpec("v3.3", 0.5), ArmSpec("v3.4", 0.5)), guardrails=()
    )
    data = {"v3.2": arm(6000, 5280), "v3.3": arm(6000, 5460), "v3.4": arm(6000, 5580)}
    d = decide(spec, data)
    assert d.action == "promote"
    assert d.winner == "v3.4"


def test_holm_can_withhold_a_promotion_that_one_test_alone_would_make() -> None:
    # v3.3 is significant alone (fixed test, p ≈ 0.04) but not with three comparisons in the
    # family (Holm: 3 × 0.04 > 0.05)
    spec = dataclasses.replace(
        SPEC,
        method="fixed",
        guardrails=(),
        baseline=ArmSpec("v3.2", 1),
        candidates=(ArmSpec("v3.3", 1), ArmSpec("v3.4", 1), ArmSpec("v3.5", 1)),
    )
    data = {"v3.2": arm(5000, 4500), "v3.3": arm(5000, 4560), "v3.4": arm(5000, 4500),
            "v3.5": arm(5000, 4500)}  # fmt: skip
    d = decide(spec, data)
    primary = d.result("v3.3", "success")
    assert primary is not None
    assert primary.comparison is not None
    assert primary.comparison.significant
    assert not primary.significant
    assert d.action == "continue"
    assert "not significant after Holm" in d.summary


def test_secondary_metrics_are_adjusted_and_reported_but_do_not_decide() -> None:
    rating = MetricSpec(name="rating", kind="mean")
    spec = dataclasses.replace(SPEC, secondary=(rating,))
    data = {
        "v3.2": ArmData(5000, {**arm(5000, 4500).metrics, "rating": latency(5000, 4.0, 1.0)}),
        "v3.3": ArmData(5000, {**arm(5000, 4510).metrics, "rating": latency(5000, 3.5, 1.0)}),
    }
    d = decide(spec, data)
    assert d.action == "continue"
    secondary = d.result("v3.3", "rating")
    assert secondary is not None
    assert secondary.role == "secondary"
    assert secondary.significant
    assert secondary.adjusted_p is not None
    assert secondary.comparison is not None
    assert secondary.comparison.p_value is not None
    assert secondary.adjusted_p >= secondary.comparison.p_value


def test_fixed_promotes_where_sequential_still_waits() -> None:
    data = {"v3.2": arm(3000, 2700), "v3.3": arm(3000, 2745)}  # +1.5 points, z ≈ 2.0
    # Planned for a 2.2-point effect: about 2,900 runs per arm, so 3,000 is past the horizon.
    planned = dataclasses.replace(SUCCESS, mde=0.022)
    fixed = decide(dataclasses.replace(SPEC, method="fixed", primary=planned), data)
    sequential = decide(SPEC, data)
    assert fixed.action == "promote"
    assert "95 % CI" in fixed.summary
    assert sequential.action == "continue"


def test_a_fixed_test_acts_only_at_its_planned_sample_size() -> None:
    # The same data, planned for the spec's 1-point effect (about 13,500 runs per arm): a
    # fixed-horizon test read at 3,000 runs says what it would do, and does not do it.
    data = {"v3.2": arm(3000, 2700), "v3.3": arm(3000, 2745)}
    early = decide(dataclasses.replace(SPEC, method="fixed"), data)
    assert (early.action, early.winner) == ("continue", None)
    assert early.codes[0] == "before_horizon"
    assert "would promote" in early.reasons[0].message
    planned = int(early.reasons[0].message.split("planned ")[1].split(" per")[0].replace(",", ""))
    assert 13_000 < planned < 14_500
    # At the horizon the test acts (the same rates, more runs).
    late = {
        "v3.2": arm(planned, round(planned * 0.9)),
        "v3.3": arm(planned, round(planned * 0.915)),
    }
    at_horizon = decide(dataclasses.replace(SPEC, method="fixed"), late)
    assert (at_horizon.action, at_horizon.final) == ("promote", True)
    assert not early.final


def test_a_fixed_test_without_a_difference_at_its_horizon_ends_inconclusive() -> None:
    # Read once: at its planned size "no difference" is the verdict, final like any other.
    fixed = dataclasses.replace(SPEC, method="fixed")
    planned = 14_500
    data = {"v3.2": arm(planned, round(planned * 0.9)), "v3.3": arm(planned, round(planned * 0.9))}
    decision = decide(fixed, data)
    assert (decision.action, decision.final, decision.codes[0]) == ("continue", True, "at_horizon")
    assert "inconclusive" in decision.reasons[0].message
    # Sequential decisions are never final: they may be looked at again.
    assert not decide(SPEC, data).final


def test_results_hold_every_arm_and_metric() -> None:
    d = decide(SPEC, {"v3.2": arm(5000, 4500), "v3.3": arm(5000, 4520)})
    keys = [(r.arm, r.metric, r.role) for r in d.results]
    assert keys == [
        ("v3.2", "success", "primary"),
        ("v3.3", "success", "primary"),
        ("v3.2", "latency_s", "guardrail"),
        ("v3.3", "latency_s", "guardrail"),
    ]
    baseline = d.results[0]
    assert (baseline.n, baseline.mean, baseline.comparison) == (5000, 0.9, None)


@pytest.mark.parametrize(
    "change",
    [
        {"alpha": 1.5},
        {"candidates": ()},
        {"min_runs_per_arm": 0},
        {"method": "bayesian"},
        {"candidates": (ArmSpec("v3.2", 0.5),)},
        {"baseline": ArmSpec("v3.2", -1.0)},
        {"primary": PrimaryMetric(name="success", mde=0.0)},
        {"guardrails": (Guardrail(name="latency_s", kind="mean", margin=-1.0),)},
    ],
)
def test_an_unusable_spec_halts_instead_of_raising(change: dict[str, object]) -> None:
    spec = dataclasses.replace(SPEC, **change)  # type: ignore[arg-type]
    d = decide(spec, {"v3.2": arm(5000, 4500), "v3.3": arm(5000, 4520)})
    assert d.action == "halt"
    assert d.codes[0] == "invalid_spec"
    assert d.srm is None


def test_statistics_of_the_wrong_kind_halt() -> None:
    wrong = ArmData(5000, {"success": MeanStats(5000, 4500.0, 4500.0),
                           "latency_s": latency(5000, 3, 1)})  # fmt: skip
    d = decide(SPEC, {"v3.2": arm(5000, 4500), "v3.3": wrong})
    assert d.action == "halt"
    assert d.codes == ("invalid_spec",)
    assert "expected ProportionStats" in d.summary
