"""What each workflow did lately, for the console's workflows list: runs started in a window,
how many ended and failed, the error ratio and the cost per ended run. Shadow runs are not the
workflow's traffic (they answer no one) and are left out.

One grouped read over the runs created in the window (``ix_run_created_at``): its cost grows
with the window's traffic, not with the table, which is why the window is bounded."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, func, select
from sqlmodel import Session, col

from control_plane.kit.time import utcnow
from control_plane.store.tables import RunRow

__all__ = ["WorkflowActivity", "activity"]

_FAILED = ("failed", "budget_exceeded")
_ENDED = ("succeeded", *_FAILED)


class WorkflowActivity(BaseModel):
    model_config = ConfigDict(frozen=True)
    workflow: str
    runs: int = Field(description="runs started in the window (shadow runs not counted)")
    ended: int = Field(description="of those, ended: succeeded, failed or budget_exceeded")
    failed: int = Field(description="of those, failed or stopped by their budget")
    error_ratio: float | None = Field(description="failed / ended; none before any ended")
    cost_per_run_usd: float | None = Field(description="cost of the ended runs / ended")


def activity(session: Session, *, window_s: float) -> list[WorkflowActivity]:
    since = utcnow() - timedelta(seconds=window_s)
    ended = func.sum(case((col(RunRow.status).in_(_ENDED), 1), else_=0))
    failed = func.sum(case((col(RunRow.status).in_(_FAILED), 1), else_=0))
    cost = func.sum(case((col(RunRow.status).in_(_ENDED), RunRow.cost_usd), else_=0.0))
    rows = session.execute(
        select(col(RunRow.workflow), func.count(), ended, failed, cost)
        .where(col(RunRow.created_at) >= since, col(RunRow.shadow_of).is_(None))
        .group_by(RunRow.workflow)
        .order_by(RunRow.workflow)
    ).all()
    found = []
    for workflow, runs, done, bad, spent in rows:
        done, bad = int(done or 0), int(bad or 0)
        found.append(
            WorkflowActivity(
                workflow=workflow,
                runs=int(runs),
                ended=done,
                failed=bad,
                error_ratio=bad / done if done else None,
                cost_per_run_usd=float(spent or 0.0) / done if done else None,
            )
        )
    return found
