"""What the experiments API takes and returns: pydantic models, never table rows."""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from control_plane.kit.storable import StoreText
from control_plane.kit.time import UtcDatetime

__all__ = [
    "BUILTIN_METRICS",
    "EXPERIMENT_STATUSES",
    "Bound",
    "CandidateShare",
    "ExperimentCreate",
    "ExperimentPublic",
    "ExperimentStatus",
    "Guardrail",
    "MetricKind",
    "PrimaryMetric",
    "RampStep",
    "SecondaryMetric",
]

MetricKind = Literal["proportion", "mean"]
# ``halted`` still routes (the current step's shares); the last three have ended.
ExperimentStatus = Literal["running", "halted", "stopped", "promoted", "rolled_back"]
EXPERIMENT_STATUSES: tuple[str, ...] = get_args(ExperimentStatus)
Direction = Literal["increase", "decrease"]
_METRIC = r"^[A-Za-z][A-Za-z0-9_\-.]*$"
# Python's JSON reader takes NaN and Infinity, which PostgreSQL's json type (the stored config)
# refuses: every request model here refuses them as a 422 first.
_REQUEST = ConfigDict(extra="forbid", allow_inf_nan=False)
# Every run counts towards these, from the engine's facts: no outcome needs to be sent.
BUILTIN_METRICS: dict[str, MetricKind] = {
    "success": "proportion",
    "latency_s": "mean",
    "cost_usd": "mean",
}


class _Metric(BaseModel):
    model_config = _REQUEST
    name: str = Field(pattern=_METRIC, max_length=100)
    kind: MetricKind | None = Field(
        default=None,
        description="proportion (boolean outcomes) or mean (numbers); built-in metrics "
        "(success, latency_s, cost_usd) know theirs",
    )
    direction: Direction = Field(description="which way is better")

    @model_validator(mode="after")
    def _kind(self) -> _Metric:
        builtin = BUILTIN_METRICS.get(self.name)
        if builtin is not None and self.kind not in (None, builtin):
            raise ValueError(f"{self.name} is a built-in {builtin} metric, not a {self.kind}")
        if self.kind is None:
            if builtin is None:
                raise ValueError(f"say the kind of metric {self.name!r}: proportion or mean")
            self.kind = builtin
        return self


class PrimaryMetric(_Metric):
    mde: float = Field(gt=0, description="the minimum detectable effect")
    relative: bool = Field(default=True, description="mde relative to the baseline (0.05 = 5 %)")


class SecondaryMetric(_Metric):
    """A metric reported with the primary one, in its correction's family (``correction``):
    it never decides on its own."""


class Guardrail(_Metric):
    margin: float = Field(default=0.0, ge=0, description="tolerated worsening before a rollback")
    relative: bool = Field(default=False, description="margin relative to the baseline")


class Bound(BaseModel):
    """An absolute limit on a candidate: crossing it after ``after_runs`` runs rolls it back
    (with ``auto_rollback``), whatever the comparison with the baseline says. "Error rate above
    5 % after 200 runs" is ``{metric: success, min: 0.95, after_runs: 200}``."""

    model_config = _REQUEST
    metric: str = Field(pattern=_METRIC, max_length=100)
    min: float | None = Field(default=None, description="the candidate's mean must stay at least")
    max: float | None = Field(default=None, description="the candidate's mean must stay at most")
    after_runs: int = Field(default=100, ge=1, description="judged once the arm has this many")

    @model_validator(mode="after")
    def _limit(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError(f"bound on {self.metric!r} needs `min` or `max`")
        return self


class CandidateShare(BaseModel):
    model_config = _REQUEST
    version: StoreText = Field(min_length=1, max_length=64)
    percent: float = Field(gt=0, le=100, description="share of the label's traffic")


class RampStep(BaseModel):
    model_config = _REQUEST
    percent: float = Field(gt=0, le=100, description="the candidate's share at this step")
    min_duration_s: float = Field(default=0, ge=0, description="held at least this long")
    min_runs: int = Field(default=0, ge=0, description="and until this many runs per arm")


class ExperimentCreate(BaseModel):
    """Compare the label's version (the baseline) with candidate versions on live traffic."""

    model_config = _REQUEST
    workflow: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=128)
    label: str = Field(default="prod", pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=64)
    name: StoreText | None = Field(default=None, max_length=200)
    candidates: list[CandidateShare] = Field(
        default_factory=list, description="fixed shares (or use `ramp` with one candidate)"
    )
    candidate: StoreText | None = Field(
        default=None, min_length=1, max_length=64, description="the one candidate of a ramp"
    )
    ramp: list[RampStep] = Field(default_factory=list, description="e.g. 1 → 5 → 25 → 50 %")
    primary: PrimaryMetric
    guardrails: list[Guardrail] = Field(default_factory=list, max_length=20)
    secondary: list[SecondaryMetric] = Field(
        default_factory=list,
        max_length=20,
        description="metrics reported alongside the primary, corrected with it",
    )
    correction: Literal["holm", "benjamini_hochberg"] = Field(
        default="holm",
        description="multiple-comparison correction across candidates and the primary and "
        "secondary metrics",
    )
    guardrail_correction: bool = Field(
        default=True,
        description="Holm-adjust the guardrails with margin 0 together (across them and the "
        "candidates), so together they roll an A/A experiment back at most alpha of the time; "
        "off: each is tested at alpha",
    )
    bounds: list[Bound] = Field(default_factory=list, max_length=20)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    min_runs_per_arm: int = Field(default=100, ge=1)
    method: Literal["fixed", "sequential"] = "sequential"
    tuning_runs: int = Field(
        default=10_000,
        ge=10,
        description="sequential method: the runs (both arms) its confidence sequence is tightest "
        "at (Waudby-Smith et al.'s rho); the guarantee holds whatever it is",
    )
    cuped: bool = Field(
        default=False,
        strict=True,
        description="CUPED: adjust each metric by the users' own value of it before the "
        "experiment started (Deng et al. 2013), with the variance reduction in the results; "
        "users without earlier runs count with 0",
    )
    auto_rollback: bool = True
    auto_promote: bool = False
    no_traffic_timeout_s: float = Field(default=3600, gt=0)

    @model_validator(mode="after")
    def _arms(self) -> ExperimentCreate:
        if bool(self.candidates) == bool(self.ramp):
            raise ValueError("give either `candidates` (fixed shares) or `candidate` and `ramp`")
        if self.ramp:
            if self.candidate is None:
                raise ValueError("a ramp needs its `candidate` version")
            percents = [step.percent for step in self.ramp]
            if percents != sorted(percents) or len(set(percents)) != len(percents):
                raise ValueError(f"ramp percents must rise step by step, got {percents}")
        elif self.candidate is not None:
            raise ValueError("`candidate` goes with `ramp`; with fixed shares use `candidates`")
        versions = [c.version for c in self.candidates]
        if len(set(versions)) != len(versions):
            raise ValueError(f"a candidate is listed more than once: {versions}")
        total = math.fsum(c.percent for c in self.candidates)
        if total > 100 + 1e-9:
            raise ValueError(f"candidate percents sum to {total:g}; at most 100")
        names = [self.primary.name, *(g.name for g in self.guardrails)]
        if len(set(names)) != len(names):
            raise ValueError(f"a metric is named twice among primary and guardrails: {names}")
        names += [m.name for m in self.secondary]
        if len(set(names)) != len(names):
            raise ValueError(
                f"a metric is named twice among primary, guardrails and secondary: {names}"
            )
        return self

    def shares_at(self, step: int) -> list[dict[str, object]]:
        """The candidates' shares (fractions of the label's traffic) at ramp ``step``."""
        if self.ramp:
            return [{"version": self.candidate, "share": self.ramp[step].percent / 100}]
        return [{"version": c.version, "share": c.percent / 100} for c in self.candidates]


class ExperimentPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    workflow: str
    label: str
    name: str
    status: ExperimentStatus
    baseline: str
    arms: list[dict[str, object]] = Field(description="candidates and their current shares")
    step: int = Field(description="the ramp step (0 without a ramp)")
    step_started_at: UtcDatetime
    config: ExperimentCreate
    created_at: UtcDatetime
    created_by: str
    ended_at: UtcDatetime | None = None
    outcome: str | None = Field(default=None, description="why it ended")
    halted_at: UtcDatetime | None = None
    halt_reasons: list[dict[str, Any]] | None = Field(
        default=None, description="why it halted: code, message, arm, metric"
    )
    acknowledged: list[str] = Field(
        default_factory=list,
        description="halt reason codes a person resumed past: they halt it no more",
    )
