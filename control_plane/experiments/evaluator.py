"""The background evaluator: every ``experiment_eval_s`` it analyses each running experiment and
applies its rules.

* ``rollback`` (a guardrail regression the test finds significant, or a worse primary metric)
  with ``auto_rollback``: the candidates go to 0 %, the experiment ends ``rolled_back`` and the
  label stays on the baseline.
* ``promote`` with ``auto_promote``, at the last ramp step (or without a ramp): the experiment
  ends ``promoted`` and the label moves to the winner.
* a ramp step advances when its gate passes: held ``min_duration_s``, ``min_runs`` in every arm
  at this step, and an analysis that neither halts nor rolls back.
* no run for ``no_traffic_timeout_s``: the decision is ``halt`` and says so (nothing is acted on).

Every new decision and every action is stored (``GET /v1/experiments/{id}/decisions``) and
written to the audit log, with the statistics it rests on. Actions are conditional updates on the
experiment's status and step, so two processes evaluating at once act once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, text, update
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from analysis.decision import Decision
from control_plane.audit.service import record as audit
from control_plane.experiments.results import analyse, to_public
from control_plane.experiments.schemas import ExperimentCreate, ExperimentPublic
from control_plane.kit.time import as_utc, utcnow
from control_plane.metrics import Metrics
from control_plane.store.db import SessionFactory, session_scope
from control_plane.store.tables import ExperimentDecisionRow, ExperimentRow, RunRow
from control_plane.workflows.labels import set_label

__all__ = ["ACTOR", "Evaluation", "Evaluator", "evaluate"]

log = logging.getLogger(__name__)

ACTOR = "evaluator"


def _statistics(experiment: ExperimentPublic, decision: Decision) -> dict[str, Any]:
    public = to_public(experiment, decision).model_dump(mode="json")
    public.pop("experiment")
    return public


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluation: what the analysis decided, what was done, why, and on what numbers."""

    at: datetime
    step: int
    action: str
    applied: str | None
    reasons: list[dict[str, Any]]
    statistics: dict[str, Any]
    stored: bool = False  # a new decision row (news or acted on), not a repeat

    def count(self, metrics: Metrics | None, experiment_id: int) -> None:
        """Count this evaluation in ``metrics``; call it once its unit of work committed."""
        if metrics is not None:
            metrics.observe_evaluation(
                experiment_id, action=self.action, applied=self.applied, stored=self.stored
            )


def _reason(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "arm": None, "metric": None}


def _crossed_bounds(
    experiment: ExperimentPublic, statistics: dict[str, Any]
) -> list[dict[str, Any]]:
    """Reasons for each candidate metric beyond an absolute bound after enough runs."""
    candidates = {str(a["version"]) for a in experiment.arms}
    crossed = []
    for bound in experiment.config.bounds:
        for row in statistics["metrics"]:
            if row["arm"] not in candidates or row["metric"] != bound.metric:
                continue
            mean, n = row.get("mean"), int(row["n"])
            if mean is None or n < bound.after_runs:
                continue
            low = bound.min is not None and mean < bound.min
            high = bound.max is not None and mean > bound.max
            if low or high:
                limit = f"at least {bound.min:g}" if low else f"at most {bound.max:g}"
                crossed.append({
                    "code": "bound_crossed", "arm": row["arm"], "metric": bound.metric,
                    "message": f"{row['arm']}'s {bound.metric} is {mean:.4g} after {n} runs; "
                               f"the bound is {limit}: roll back",
                })  # fmt: skip
    return crossed


def _last_run_at(session: Session, experiment_id: int) -> datetime | None:
    latest = session.exec(
        select(func.max(RunRow.created_at)).where(RunRow.experiment_id == experiment_id)
    ).first()
    return as_utc(latest) if latest is not None else None


def _change(session: Session, experiment: ExperimentPublic, **values: Any) -> bool:
    """Update the experiment if it is still running at the step we analysed (another process
    may have acted first); whether we did."""
    changed = session.execute(
        update(ExperimentRow)
        .where(
            col(ExperimentRow.id) == experiment.id,
            col(ExperimentRow.status) == "running",
            col(ExperimentRow.step) == experiment.step,
        )
        .values(**values)
    )
    return bool(changed.rowcount == 1)  # type: ignore[attr-defined]


def _end(
    session: Session, experiment: ExperimentPublic, *, status: str, outcome: str, arms: Any
) -> bool:
    """End the experiment if it is still running at the step we analysed; whether we did."""
    return _change(
        session, experiment, status=status, outcome=outcome, ended_at=utcnow(), arms=arms
    )


def _ramp_gate(experiment: ExperimentPublic, decision: Decision, now: datetime) -> tuple[bool, str]:
    config: ExperimentCreate = experiment.config
    step = config.ramp[experiment.step]
    held = (now - as_utc(experiment.step_started_at)).total_seconds()
    if decision.action in ("halt", "rollback"):
        return False, f"the analysis says {decision.action}"
    if held < step.min_duration_s:
        return False, f"step {experiment.step} held {held:.0f} s of {step.min_duration_s:.0f} s"
    runs = decision.srm.observed if decision.srm is not None else {}
    short = {arm: n for arm, n in runs.items() if n < step.min_runs}
    if short or not runs:
        return False, f"step {experiment.step} needs {step.min_runs} runs per arm, has {runs}"
    return True, "gate passed"


def _duration(seconds: float, timeout_s: float) -> str:
    """Minutes ("12 min"), or seconds when the timeout is under a minute ("10 s", "0.5 s")."""
    if timeout_s >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.0f} s"


def evaluate(
    session: Session, *, experiment_id: int, now: datetime | None = None
) -> Evaluation | None:
    """Analyse one running experiment and apply its rules (``applied``: ``rollback``,
    ``promote``, ``ramp`` or ``None``); ``None`` when it is not running."""
    now = now or utcnow()
    experiment, decision = analyse(session, experiment_id=experiment_id)
    if experiment.status != "running":
        return None
    config = experiment.config
    statistics = _statistics(experiment, decision)
    action, reasons = decision.action, list(statistics["reasons"])
    last = _last_run_at(session, experiment_id) or as_utc(experiment.created_at)
    idle = (now - last).total_seconds()
    if idle > config.no_traffic_timeout_s:
        action = "halt"
        words = (
            f"no run for {_duration(idle, config.no_traffic_timeout_s)} "
            f"(timeout {_duration(config.no_traffic_timeout_s, config.no_traffic_timeout_s)}): halt"
        )
        reasons.insert(0, _reason("no_traffic", words))
    crossed = _crossed_bounds(experiment, statistics)
    if crossed and action not in ("halt",):
        action = "rollback"
        reasons[:0] = crossed
    applied: str | None = None
    target = f"{experiment.workflow}:{experiment.label}"
    last_step = not config.ramp or experiment.step == len(config.ramp) - 1
    if action == "rollback" and config.auto_rollback:
        zero = [{"version": a["version"], "share": 0.0} for a in experiment.arms]
        words = reasons[0]["message"] if reasons else "rolled back"
        if _end(session, experiment, status="rolled_back", outcome=words, arms=zero):
            applied = "rollback"
    elif action == "promote" and config.auto_promote and last_step and decision.winner:
        words = reasons[0]["message"] if reasons else f"promoted {decision.winner}"
        if _end(session, experiment, status="promoted", outcome=words, arms=experiment.arms):
            session.flush()  # the label's guard must see the experiment ended
            set_label(session, workflow=experiment.workflow, label=experiment.label,
                      version=decision.winner, actor=ACTOR)  # fmt: skip
            applied = "promote"
    elif config.ramp and not last_step:
        passed, why = _ramp_gate(experiment, decision, now)
        if not passed:
            reasons.append(_reason("ramp_held", f"the ramp stays at step {experiment.step}: {why}"))
        else:
            step = experiment.step + 1
            if _change(
                session, experiment, step=step, step_started_at=now, arms=config.shares_at(step)
            ):
                applied = "ramp"
    if applied is not None:
        audit(session, actor=ACTOR, action=f"experiment.{applied}", target_kind="experiment",
              target=str(experiment_id), before={"step": experiment.step, "arms": experiment.arms},
              after={"target": target, "action": action, "statistics": statistics})  # fmt: skip
    evaluation = Evaluation(now, experiment.step, action, applied, reasons, statistics)
    return replace(evaluation, stored=_remember(session, experiment.id, evaluation))


def _remember(session: Session, experiment_id: int, evaluation: Evaluation) -> bool:
    """Store the decision when it is news (another action, step or reasons) or acted on;
    whether it was stored."""
    previous = session.exec(
        select(ExperimentDecisionRow)
        .where(ExperimentDecisionRow.experiment_id == experiment_id)
        .order_by(col(ExperimentDecisionRow.id).desc())
        .limit(1)
    ).first()
    codes = [r["code"] for r in evaluation.reasons]
    if (
        evaluation.applied is None
        and previous is not None
        and previous.action == evaluation.action
        and previous.step == evaluation.step
        and [r["code"] for r in previous.reasons] == codes
    ):
        return False
    if evaluation.applied is None:  # an action is audited with its own name
        audit(session, actor=ACTOR, action="experiment.decision", target_kind="experiment",
              target=str(experiment_id), before=None,
              after={"step": evaluation.step, "action": evaluation.action,
                     "statistics": evaluation.statistics})  # fmt: skip
    session.add(
        ExperimentDecisionRow(
            experiment_id=experiment_id,
            at=evaluation.at,
            step=evaluation.step,
            action=evaluation.action,
            applied=evaluation.applied,
            reasons=evaluation.reasons,
            statistics=evaluation.statistics,
        )
    )
    return True


_LOCK_CLASS = 0x7267  # "rg": the advisory-lock namespace of experiment evaluations


def _claim(session: Session, experiment_id: int) -> bool:
    """On PostgreSQL, one process at a time evaluates an experiment (every worker and replica
    runs an evaluator): a transaction-level advisory lock, released at commit; the others skip
    it this round rather than store the same decision again. SQLite serves one machine, where
    the actions' conditional updates suffice."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    taken = session.execute(
        text("SELECT pg_try_advisory_xact_lock(:space, :id)"),
        {"space": _LOCK_CLASS, "id": experiment_id},
    ).scalar()
    return bool(taken)


class Evaluator:
    """Runs ``evaluate`` for every running experiment every ``interval_s`` seconds."""

    def __init__(
        self, session_factory: SessionFactory, *, interval_s: float, metrics: Metrics | None = None
    ) -> None:
        self._factory = session_factory
        self._interval_s = interval_s
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="rollgraph-experiment-evaluator")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_once(self) -> dict[int, str | None]:
        """Evaluate every running experiment once (each in its own unit of work)."""
        return await run_in_threadpool(self._run_once)

    def _run_once(self) -> dict[int, str | None]:
        with session_scope(self._factory) as session:
            ids = session.exec(
                select(ExperimentRow.id).where(ExperimentRow.status == "running")
            ).all()
        applied: dict[int, str | None] = {}
        for experiment_id in ids:
            assert experiment_id is not None
            try:
                with session_scope(self._factory) as session:
                    if not _claim(session, experiment_id):
                        continue  # another process evaluates it right now
                    done = evaluate(session, experiment_id=experiment_id)
                if done is not None:  # counted after the commit: a rolled-back one never was
                    done.count(self._metrics, experiment_id)
                applied[experiment_id] = done.applied if done is not None else None
            except Exception:  # one broken experiment must not stop the others
                log.exception("evaluating experiment %s failed", experiment_id)
        return applied

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.run_once()
            except Exception:
                log.exception("the experiment evaluator failed; it retries")
