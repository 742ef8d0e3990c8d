"""What a run request lowers (``budget``, ``deadline_s``), stored with the run, and how a run,
a queued run's worker and a resume turn it into the engine's arguments.

A request can only lower the workflow's limits: its budget is each limit the lower of the two
(``engine.run_budget``), its deadline the shortest of its own, the workflow's and the server's.
A resume may name limits that stand instead of the run's: continuing a run that ran out of
budget is a deliberate decision to spend more. What earlier attempts billed still counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import engine
from control_plane.runs.schemas import BudgetRequest, RunRequest

__all__ = ["attempt_limits", "request_limits"]


def request_limits(request: RunRequest) -> dict[str, Any] | None:
    """What ``request`` lowers, as stored on the run; ``None`` when nothing."""
    limits: dict[str, Any] = {}
    if request.budget is not None:
        budget = request.budget.model_dump(exclude_none=True)
        if budget:
            limits["budget"] = budget
    if request.deadline_s is not None:
        limits["deadline_s"] = request.deadline_s
    return limits or None


def attempt_limits(
    workflow: engine.Workflow,
    limits: Mapping[str, Any] | None,
    server_deadline_s: float,
    resume_budget: BudgetRequest | None = None,
    *,
    run_attempt: int = 1,
) -> dict[str, Any]:
    """The engine's keyword arguments for one attempt: ``deadline_s``, the budget when the run
    has one (``budget`` with ``replace_budget``: computed here in full), and ``run_attempt``
    (executions of the run so far, this one included: a resume draws afresh)."""
    stored = limits or {}
    deadline = stored.get("deadline_s")
    kw: dict[str, Any] = {
        "deadline_s": server_deadline_s if deadline is None else min(deadline, server_deadline_s),
        "run_attempt": run_attempt,
    }
    budget = engine.run_budget(workflow, engine.Budget.of(stored.get("budget")))
    if resume_budget is not None:
        raised = engine.Budget.of(resume_budget.model_dump())
        budget = raised if budget is None else budget.replaced(raised)
    if budget is not None and budget.limited:
        kw["budget"] = budget
        kw["replace_budget"] = True
    return kw
