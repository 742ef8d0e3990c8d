"""The series of looks at an experiment: what each evaluation saw, per candidate and metric,
when its data had changed. The console charts the effect and its interval over time from it,
with the threshold the decision is taken against.

A look is stored by the evaluation that made it, in the same unit of work as its decision, and
only when the observations moved since the previous look (an idle experiment evaluated every
30 s for a week adds nothing). Reading thins a long series evenly, always keeping the newest.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from control_plane.experiments.service import get_experiment
from control_plane.kit.time import UtcDatetime
from control_plane.store.tables import ExperimentLookRow

__all__ = ["LookPublic", "list_looks", "record_look"]

# What a chart needs of a results row (and why a figure is missing); CUPED's details are in
# the decisions and the results.
_KEPT = (
    "arm", "metric", "role", "n", "runs", "mean", "effect", "ci_low", "ci_high", "relative_effect",
    "relative_ci_low", "relative_ci_high", "p_value", "adjusted_p", "significant", "reason",
)  # fmt: skip


class LookPublic(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)
    at: UtcDatetime
    step: int = Field(description="the ramp step the look was taken at")
    action: str = Field(description="what the evaluation decided: promote | rollback | ...")
    observations: int = Field(description="observations over every arm and metric")
    rows: list[dict[str, Any]] = Field(
        description="per arm and metric: n, mean, and for a candidate the effect with its "
        "interval (relative too) and p-values, as the results showed them then"
    )


def _finite(value: Any) -> Any:
    # JSON (and PostgreSQL's json type) has no NaN or infinity: an undefined figure is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def record_look(
    session: Session, *, experiment_id: int, at: Any, step: int, action: str,
    metrics: list[dict[str, Any]],
) -> bool:  # fmt: skip
    """Store this look unless its observations equal the previous look's at the same step;
    whether it was stored."""
    observations = sum(int(row.get("n") or 0) for row in metrics)
    previous = session.exec(
        select(ExperimentLookRow)
        .where(ExperimentLookRow.experiment_id == experiment_id)
        .order_by(col(ExperimentLookRow.id).desc())
        .limit(1)
    ).first()
    if previous is not None and (previous.observations, previous.step) == (observations, step):
        return False
    rows = [{key: _finite(row.get(key)) for key in _KEPT} for row in metrics]
    session.add(
        ExperimentLookRow(
            experiment_id=experiment_id,
            at=at,
            step=step,
            action=action,
            observations=observations,
            rows=rows,
        )
    )
    return True


def list_looks(session: Session, *, experiment_id: int, limit: int) -> list[LookPublic]:
    """The experiment's looks, oldest first: all of them up to ``limit``, else ``limit`` of
    them spread evenly over the whole series, the first and the newest included."""
    get_experiment(session, experiment_id=experiment_id)  # 404 for an unknown id
    where = ExperimentLookRow.experiment_id == experiment_id
    total = session.exec(select(func.count()).select_from(ExperimentLookRow).where(where)).one()
    query = select(ExperimentLookRow).where(where).order_by(col(ExperimentLookRow.id))
    if total > limit:
        ids = session.exec(
            select(ExperimentLookRow.id).where(where).order_by(col(ExperimentLookRow.id))
        ).all()
        if limit == 1:
            picked = {ids[-1]}
        else:
            picked = {ids[round(i * (len(ids) - 1) / (limit - 1))] for i in range(limit)}
        query = query.where(col(ExperimentLookRow.id).in_(picked))
    return [LookPublic.model_validate(row) for row in session.exec(query).all()]
