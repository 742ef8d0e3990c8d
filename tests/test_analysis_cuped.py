"""CUPED (``analysis.cuped``) against independent computations on the raw per-unit data.

* Hand computation with numpy: the linearised values L_u = (S_u − R·N_u)/N̄ per arm, θ the
  pooled within-arm slope Σ L_u(X_u − X̄_a) / Σ (X_u − X̄_a)², the adjusted values
  L_u − θ(X_u − X̄_a) about R_a − θ(X̄_a − X̄): their mean and sample variance must equal what
  the sufficient statistics give, to 1e-9.
* statsmodels: the ANCOVA OLS y ~ 1 + arm + x (one run per user) gives the same adjusted
  difference and slope; for a ratio the same on the linearised values.
* Degenerate cases come back unadjusted with their reason code.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from analysis.cuped import MIN_UNITS, adjust_metric, cuped_arm_data
from analysis.effects import moments
from analysis.stats import MetricStats, ProportionStats
from analysis.strata import arm_data_over_steps
from analysis.units import MeanOverUnits, RateOverUnits, UnitStats

Units = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # N, S, X, has pre data


def _draw(rng: np.random.Generator, units: int, *, runs: bool, lift: float = 0.0) -> Units:
    x = rng.gamma(2.0, 1.5, size=units)
    has = rng.random(units) < 0.8
    x = np.where(has, x, 0.0)
    n = 1.0 + rng.poisson(3.0, size=units) if runs else np.ones(units)
    per_run = 0.7 * np.where(has, x, 3.0) + rng.normal(0.0, 1.0, size=units) + lift
    s = n * per_run + rng.normal(0.0, 1.0, size=units) * np.sqrt(n)
    return n, s, x, has


def _sums(u: Units) -> UnitStats:
    n, s, x, has = u
    return UnitStats(
        len(n), n.sum(), s.sum(), (n * n).sum(), (s * s).sum(), (s * n).sum(),
        x.sum(), (x * x).sum(), (x * s).sum(), (x * n).sum(), int(has.sum()),
    )  # fmt: skip


def _by_hand(arms: dict[str, Units]) -> tuple[float, dict[str, tuple[float, float]]]:
    """θ and, per arm, the adjusted mean and the sample variance of the adjusted values."""
    lin = {}
    for name, (n, s, x, _) in arms.items():
        r = s.sum() / n.sum()
        lin[name] = ((s - r * n) / n.mean(), x, r)
    num = sum(float(np.sum(y * (x - x.mean()))) for y, x, _ in lin.values())
    den = sum(float(np.sum((x - x.mean()) ** 2)) for _, x, _ in lin.values())
    theta = num / den
    mean_x = np.concatenate([x for _, x, _ in lin.values()]).mean()
    out = {}
    for name, (y, x, r) in lin.items():
        adjusted = y - theta * (x - x.mean())
        out[name] = (r - theta * (x.mean() - mean_x), float(np.var(adjusted, ddof=1)))
    return theta, out


@pytest.mark.parametrize("runs", [False, True], ids=["one_run_per_user", "repeat_users"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sufficient_statistics_match_the_hand_computation(runs: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    arms = {"A": _draw(rng, 400, runs=runs), "B": _draw(rng, 300, runs=runs, lift=0.2)}
    adjusted, how = adjust_metric({arm: ("mean", _sums(u)) for arm, u in arms.items()})
    theta, expected = _by_hand(arms)
    assert how.reason == "ok"
    assert how.theta == pytest.approx(theta, rel=1e-9)
    assert how.covered == sum(int(u[3].sum()) for u in arms.values())
    for arm, (mean, variance) in expected.items():
        stats = adjusted[arm]
        assert isinstance(stats, MeanOverUnits)
        assert stats.n == len(arms[arm][0])
        assert stats.mean == pytest.approx(mean, rel=1e-9)
        assert stats.variance == pytest.approx(variance, rel=1e-9)


@pytest.mark.parametrize("runs", [False, True], ids=["one_run_per_user", "repeat_users"])
def test_the_adjusted_difference_is_statsmodels_ancova(runs: bool) -> None:
    rng = np.random.default_rng(7)
    arms = {"A": _draw(rng, 500, runs=runs), "B": _draw(rng, 450, runs=runs, lift=0.3)}
    adjusted, how = adjust_metric({arm: ("mean", _sums(u)) for arm, u in arms.items()})
    ys, xs, treated = [], [], []
    ratios = {}
    for name, (n, s, x, _) in arms.items():
        ratios[name] = s.sum() / n.sum()
        # one run per user: y is the user's value; a ratio: its linearised value
        ys.append(s if not runs else (s - ratios[name] * n) / n.mean())
        xs.append(x)
        treated.append(np.full(len(n), 1.0 if name == "B" else 0.0))
    design = np.column_stack(
        [np.ones(sum(map(len, ys))), np.concatenate(treated), *[np.concatenate(xs)]]
    )
    fit = sm.OLS(np.concatenate(ys), design).fit()  # y ~ 1 + arm + x
    difference = fit.params[1] + (ratios["B"] - ratios["A"] if runs else 0.0)
    a, b = adjusted["A"], adjusted["B"]
    assert a is not None and b is not None and a.mean is not None and b.mean is not None
    assert b.mean - a.mean == pytest.approx(difference, rel=1e-9)
    assert how.theta == pytest.approx(fit.params[2], rel=1e-9)


def _variance_of_mean(stats: MetricStats | None) -> float:
    m = moments(stats) if stats is not None else None
    assert m is not None
    return m.variance / m.n


def test_a_correlated_covariate_reduces_the_variance_by_rho_squared() -> None:
    rng = np.random.default_rng(11)
    units = 20_000
    rho = 0.7
    arms = {}
    for name in ("A", "B"):
        x = rng.normal(size=units)
        y = rho * x + np.sqrt(1 - rho * rho) * rng.normal(size=units)
        ones = np.ones(units)
        arms[name] = (ones, y, x, ones.astype(bool))
    step = {arm: {"m": ("mean", _sums(u))} for arm, u in arms.items()}
    data, reductions = cuped_arm_data({0: step}, baseline="A", arms=["A", "B"], step=0)
    figure = reductions[("B", "m")].variance_reduction
    assert figure is not None
    assert figure == pytest.approx(rho * rho, abs=0.02)
    plain = arm_data_over_steps({0: step}, baseline="A", arms=["A", "B"], step=0)
    before = sum(_variance_of_mean(plain[a].metrics["m"]) for a in "AB")
    after = sum(_variance_of_mean(data[a].metrics["m"]) for a in "AB")
    assert figure == pytest.approx(1 - after / before, rel=1e-12)


def test_a_proportion_stays_a_rate_and_steps_are_combined() -> None:
    rng = np.random.default_rng(5)

    def users(count: int) -> UnitStats:
        x = rng.beta(2, 5, size=count)
        n = 1.0 + rng.poisson(2.0, size=count)
        s = rng.binomial(n.astype(int), x).astype(float)
        return _sums((n, s, x, np.ones(count, dtype=bool)))

    steps = {k: {arm: {"success": ("proportion", users(300))} for arm in "AB"} for k in (0, 1)}
    data, reductions = cuped_arm_data(steps, baseline="A", arms=["A", "B"], step=1)
    assert isinstance(data["B"].metrics["success"], RateOverUnits)
    assert data["B"].users == 300
    figure = reductions[("B", "success")].variance_reduction
    assert figure is not None and 0.05 < figure < 1


def _constant(units: int, *, x: float, covered: int) -> UnitStats:
    n = np.ones(units)
    s = np.arange(units, dtype=float) % 2
    return _sums((n, s, np.full(units, x), np.arange(units) < covered))


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        (_constant(50, x=0.0, covered=0), _constant(50, x=0.0, covered=0), "no_pre_data"),
        (
            _constant(50, x=2.0, covered=50),
            _constant(50, x=2.0, covered=50),
            "no_covariate_variance",
        ),
        (
            _constant(MIN_UNITS - 1, x=1.0, covered=3),
            _constant(50, x=2.0, covered=50),
            "too_few_units",
        ),
        (
            UnitStats(50, 50, float("inf"), 50, 1, 1, 1, 1, 1, 1, 1),
            _constant(50, x=2.0, covered=50),
            "not_finite",
        ),
    ],
)
def test_degenerate_cases_stay_unadjusted_with_a_reason(
    a: UnitStats, b: UnitStats, reason: str
) -> None:
    adjusted, how = adjust_metric({"A": ("proportion", a), "B": ("proportion", b)})
    assert how.reason == reason
    assert how.theta is None
    assert adjusted["B"] == b.as_metric_stats("proportion")
    assert isinstance(adjusted["B"], ProportionStats)  # one run per user: exactly as before
    _, reductions = cuped_arm_data(
        {0: {"A": {"m": ("proportion", a)}, "B": {"m": ("proportion", b)}}},
        baseline="A",
        arms=["A", "B"],
        step=0,
    )
    assert reductions[("B", "m")].reason == reason
    assert reductions[("B", "m")].variance_reduction is None
