"""While an experiment runs on a label it owns the label's traffic: moving the label or setting
its rollout underneath it would change what the experiment measures. Both are refused until the
experiment ends (stopped by hand, or promoted or rolled back by its rules). A ``halted``
experiment owns them too: a halt keeps the traffic where it was until a person resumes or stops
it."""

from __future__ import annotations

from sqlmodel import Session, col, select

from control_plane.errors import Conflict
from control_plane.store.tables import ExperimentRow

__all__ = ["OWNING", "refuse_while_running", "running_on"]

OWNING = ("running", "halted")
"""The statuses in which an experiment routes its label's traffic."""


def refuse_while_running(
    session: Session, *, workflow_id: int, workflow: str, label: str, change: str
) -> None:
    """``Conflict`` when an experiment runs on ``workflow:label``; ``change`` says what was
    refused ("move the label", "set the rollout")."""
    query = select(ExperimentRow.id).where(
        ExperimentRow.workflow_id == workflow_id,
        ExperimentRow.label == label,
        col(ExperimentRow.status).in_(OWNING),
    )
    running = session.exec(query).first()
    if running is not None:
        raise Conflict(
            f"experiment {running} runs on {workflow}:{label} and owns its traffic; stop it "
            f"(POST /v1/experiments/{running}/stop) before you {change}"
        )


def running_on(session: Session, *, workflow_id: int, label: str) -> ExperimentRow | None:
    """The experiment that owns ``label``'s traffic now, if any."""
    query = select(ExperimentRow).where(
        ExperimentRow.workflow_id == workflow_id,
        ExperimentRow.label == label,
        col(ExperimentRow.status).in_(OWNING),
    )
    return session.exec(query).first()
