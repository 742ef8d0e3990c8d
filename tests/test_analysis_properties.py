"""Properties of the whole package: no function raises on valid statistics, and no result holds
a NaN or an infinity (a degenerate case answers with a reason code and ``None``); and the
package stays pure (no control plane, engine, web or SQL imports)."""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.comparison import Alternative, Scale
from analysis.decision import decide
from analysis.multiple import holm
from analysis.power import runs_for_mean, runs_for_proportion
from analysis.sequential import sequential_test
from analysis.significance import fixed_test, two_proportion_z_test, welch_t_test
from analysis.spec import ArmSpec, ExperimentSpec, Guardrail, MetricSpec, PrimaryMetric
from analysis.srm import srm_check
from analysis.stats import ArmData, MeanStats, ProportionStats

ROOT = Path(__file__).resolve().parent.parent
FINITE = st.floats(allow_nan=False, allow_infinity=False)
VALUES = st.lists(st.floats(-1e100, 1e100, allow_nan=False), max_size=30)


def _scaled(values: list[float], copies: int) -> MeanStats:
    """The statistics of ``values`` repeated ``copies`` times: large n, consistent sums."""
    one = MeanStats.from_values(values)
    return MeanStats(one.n * copies, one.total * copies, one.total_sq * copies)


def _arbitrary(n: int, total: float, total_sq: float) -> MeanStats:
    """Any non-negative n with finite sums, consistent or not (rounding in a store)."""
    return MeanStats(n, total, abs(total_sq)) if n else MeanStats()


MEANS = st.one_of(
    st.builds(_scaled, VALUES, st.integers(1, 10**7)),
    st.builds(_arbitrary, st.integers(0, 10**12), FINITE, FINITE),
)
PROPORTIONS = st.integers(0, 10**10).flatmap(
    lambda n: st.builds(ProportionStats, st.just(n), st.integers(0, n))
)
ALTERNATIVES = st.sampled_from(["two-sided", "greater", "less"])
SCALES = st.sampled_from(["absolute", "relative"])
# invalid ones included (0, 1, 7): they answer "invalid_parameter" (a NaN alpha too, but it is
# echoed back in ``alpha``, so it stays out of the finiteness property)
ALPHAS = st.one_of(st.floats(1e-12, 0.5), st.sampled_from([0.05, 0.0, 1.0, 7.0]))


def assert_finite(obj: Any, path: str = "result") -> None:
    """Every float anywhere in ``obj`` (dataclasses, mappings, sequences) is finite."""
    if isinstance(obj, float):
        assert math.isfinite(obj), f"{path} = {obj}"
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            assert_finite(getattr(obj, f.name), f"{path}.{f.name}")
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            assert_finite(value, f"{path}[{key!r}]")
    elif isinstance(obj, tuple | list):
        for i, value in enumerate(obj):
            assert_finite(value, f"{path}[{i}]")


@settings(max_examples=300, deadline=None)
@given(MEANS, MEANS, ALTERNATIVES, SCALES, FINITE, ALPHAS)
def test_mean_comparisons_never_raise_or_return_non_finite_numbers(
    b: MeanStats, c: MeanStats, alternative: Alternative, scale: Scale, null: float, alpha: float
) -> None:
    kwargs = {"alternative": alternative, "scale": scale, "null": null, "alpha": alpha}
    for result in (
        welch_t_test(b, c, **kwargs),  # type: ignore[arg-type]
        sequential_test(b, c, **kwargs),  # type: ignore[arg-type]
        fixed_test(b, c, **kwargs),  # type: ignore[arg-type]
    ):
        assert_finite(result)
        assert (result.p_value is None) == (result.reason != "ok")
        if result.p_value is not None:
            assert 0.0 <= result.p_value <= 1.0


@settings(max_examples=300, deadline=None)
@given(PROPORTIONS, PROPORTIONS, ALTERNATIVES, SCALES, st.floats(-2, 2), st.booleans())
def test_proportion_comparisons_never_raise_or_return_non_finite_numbers(
    b: ProportionStats,
    c: ProportionStats,
    alternative: Alternative,
    scale: Scale,
    null: float,
    pooled: bool,
) -> None:
    for result in (
        two_proportion_z_test(b, c, alternative=alternative, scale=scale, null=null, pooled=pooled),
        sequential_test(b, c, alternative=alternative, scale=scale, null=null),
    ):
        assert_finite(result)
        assert (result.p_value is None) == (result.reason != "ok")


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abcde"), st.integers(-5, 10**12), max_size=5),
    st.dictionaries(st.sampled_from("abcdef"), FINITE, max_size=6),
    st.floats(-1, 2),
)
def test_srm_never_raises(
    counts: dict[str, int], shares: dict[str, float], threshold: float
) -> None:
    result = srm_check(counts, shares, threshold=threshold)
    assert_finite(result)
    assert result.flagged == (result.reason in ("mismatch", "zero_share_with_runs"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats()), max_size=20), st.floats())
def test_holm_never_raises(p_values: list[float | None], alpha: float) -> None:
    result = holm(p_values, alpha)
    assert_finite([a for a in result.adjusted if a is not None])
    assert len(result.adjusted) == len(p_values)


@settings(max_examples=300, deadline=None)
@given(FINITE, FINITE, FINITE, st.booleans(), ALPHAS, st.floats(0, 1), ALTERNATIVES, FINITE)
def test_power_never_raises(
    mean: float,
    std: float,
    mde: float,
    relative: bool,
    alpha: float,
    power: float,
    alternative: Alternative,
    share: float,
) -> None:
    common = {"mde": mde, "relative": relative, "alpha": alpha, "power": power}
    a = runs_for_mean(
        baseline_mean=mean, baseline_std=std, alternative=alternative, candidate_share=share,
        **common,  # type: ignore[arg-type]
    )  # fmt: skip
    b = runs_for_proportion(
        baseline_rate=abs(mean) % 1.0, alternative=alternative, candidate_share=share,
        **common,  # type: ignore[arg-type]
    )  # fmt: skip
    for size in (a, b):
        assert_finite(size)
        assert (size.total_runs is None) == (size.reason != "ok")
        assert size.total_runs is None or size.total_runs >= 4


@st.composite
def experiments(draw: st.DrawFn) -> tuple[ExperimentSpec, dict[str, ArmData]]:
    names = ["base", "c1", "c2"][: draw(st.integers(2, 3))]
    spec = ExperimentSpec(
        baseline=ArmSpec("base", draw(st.sampled_from([1.0, 0.5, 9.0]))),
        candidates=tuple(ArmSpec(n, draw(st.sampled_from([1.0, 0.5, 0.0]))) for n in names[1:]),
        primary=PrimaryMetric(name="ok", mde=draw(st.sampled_from([0.01, -0.05, 0.2])),
                              mde_relative=draw(st.booleans())),
        guardrails=(
            Guardrail(name="lat", kind="mean", direction="decrease",
                      margin=draw(st.sampled_from([0.0, 0.05, 2.0])),
                      margin_relative=draw(st.booleans())),
        ),
        secondary=(MetricSpec(name="score", kind="mean"),),
        method=draw(st.sampled_from(["fixed", "sequential"])),
        min_runs_per_arm=draw(st.sampled_from([2, 100])),
    )  # fmt: skip
    data = {}
    for name in names:
        if draw(st.booleans()) and draw(st.booleans()):
            continue  # an arm the store has nothing for
        metrics: dict[str, MeanStats | ProportionStats] = {"ok": draw(PROPORTIONS)}
        if draw(st.integers(0, 9)):
            metrics["lat"] = draw(MEANS)
        metrics["score"] = draw(MEANS)
        data[name] = ArmData(draw(st.integers(0, 10**9)), metrics)
    return spec, data


@settings(max_examples=300, deadline=None)
@given(experiments())
def test_decide_never_raises_or_returns_non_finite_numbers(
    case: tuple[ExperimentSpec, dict[str, ArmData]],
) -> None:
    spec, data = case
    decision = decide(spec, data)
    assert_finite(decision)
    assert decision.action in ("promote", "rollback", "continue", "halt")
    assert decision.reasons
    assert all(reason.message for reason in decision.reasons)
    assert (decision.winner is not None) == (decision.action == "promote")
    if any(arm.name not in data or data[arm.name].runs == 0 for arm in spec.arms):
        assert decision.action == "halt"  # missing data never promotes or rolls back
    elif any(data[arm.name].runs < spec.min_runs_per_arm for arm in spec.arms):
        assert decision.action in ("continue", "halt")


FORBIDDEN = ("control_plane", "engine", "fastapi", "sqlmodel", "sqlalchemy", "psycopg", "starlette")


def test_analysis_imports_nothing_from_the_control_plane_engine_web_or_sql() -> None:
    for path in sorted((ROOT / "analysis").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
