"""What the shadow service takes and returns: pydantic models, never table rows."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from control_plane.errors import ControlPlaneError
from control_plane.kit.storable import StoreText
from control_plane.kit.time import UtcDatetime

__all__ = ["MAX_COST_USD_PER_HOUR", "ShadowPublic", "ShadowSet", "UnknownShadowVersion"]

# A bound far above any real spend, so that a typo such as 1e308 is refused rather than stored
# as "no cap at all", which is what a cap that high would mean.
MAX_COST_USD_PER_HOUR = 1_000_000.0


class UnknownShadowVersion(ControlPlaneError):
    """The body names a version the workflow does not have: the request is wrong, not the
    resource in its path, so a 422 (the path's workflow and label are 404s)."""

    status_code = 422
    code = "unknown_version"


class ShadowSet(BaseModel):
    """Start (or change) the label's shadow candidate."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"version": "v3.4", "percent": 10, "max_cost_usd_per_hour": 5}]
        },
    )
    version: StoreText = Field(
        min_length=1, max_length=64, description="the version to run unseen beside the label's"
    )
    percent: float = Field(
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="share of the label's users (sticky) whose requests are mirrored, (0, 100]",
    )
    max_cost_usd_per_hour: float = Field(
        gt=0,
        le=MAX_COST_USD_PER_HOUR,
        allow_inf_nan=False,
        description="shadow runs stop being started while the label's shadow runs of the last "
        "hour cost this much; the dropped ones are counted",
    )


class ShadowPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    workflow: str
    label: str
    served: str = Field(description="the label's version, which answers the callers")
    version: str = Field(description="the shadow candidate")
    percent: float
    max_cost_usd_per_hour: float
    active: bool = Field(description="false once stopped (the last settings are kept)")
    salt: str = Field(description="the shadow's own salt: mirrored users are sticky under it")
    started_at: UtcDatetime
    started_by: str
    stopped_at: UtcDatetime | None = None
    cost_usd_last_hour: float = Field(description="billed by the label's shadow runs, last hour")
