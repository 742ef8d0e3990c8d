"""The background evaluator: every ``experiment_eval_s`` it analyses each running experiment and
applies the verdict (``control_plane.experiments.verdict``: the analysis plus time, traffic,
bounds and which halts to act on).

* ``halt`` (sample ratio mismatch, an unanalysable spec, no traffic, a metric whose outcomes
  never arrive): the experiment becomes ``halted`` with its reasons; traffic stays at the
  step's shares, the ramp and the rules wait until a person resumes or stops it.
* ``rollback`` (a guardrail regression the test finds significant, a worse primary metric, a
  crossed bound) with ``auto_rollback``: the candidates go to 0 %, the experiment ends
  ``rolled_back`` and the label stays on the baseline.
* ``promote`` with ``auto_promote``, at the last ramp step (or without a ramp): the experiment
  ends ``promoted`` and the label moves to the winner.
* a final verdict (a fixed-horizon test at its planned size, ``Decision.final``) not applied
  above, "no difference found" included: the experiment ends ``stopped`` (``applied: end``),
  so a fixed test is acted on once and never peeked at again.
* a ramp step advances when its gate passes: held ``min_duration_s``, ``min_runs`` in every arm
  at this step, and an analysis that neither halts nor rolls back.

Every new decision and every action is stored (``GET /v1/experiments/{id}/decisions``) and
written to the audit log with its reasons (codes and words) and the statistics they rest on;
the stored statistics' action and reasons are the verdict's, the analysis' own under
``analysis``. Actions are conditional updates on the experiment's status and step, so two
processes evaluating at once act once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import text, update
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from analysis.decision import Decision
from control_plane.audit.service import record as audit
from control_plane.experiments.looks import record_look
from control_plane.experiments.results import Reductions, RunCounts, analyse, to_public
from control_plane.experiments.schemas import ExperimentCreate, ExperimentPublic
from control_plane.experiments.verdict import Verdict, last_run_at, reason, verdict
from control_plane.kit.time import as_utc, utcnow
from control_plane.metrics import Metrics
from control_plane.store.db import SessionFactory, session_scope
from control_plane.store.tables import ExperimentDecisionRow, ExperimentRow
from control_plane.workflows.labels import set_label

__all__ = ["ACTOR", "Evaluation", "Evaluator", "evaluate"]

log = logging.getLogger(__name__)

ACTOR = "evaluator"


def _statistics(
    experiment: ExperimentPublic,
    decision: Decision,
    cuped: Reductions | None,
    runs: RunCounts | None,
) -> dict[str, Any]:
    public = to_public(experiment, decision, cuped, runs).model_dump(mode="json")
    public.pop("experiment")
    return public


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluation: what was decided, what was done, why, and on what numbers."""

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


def _ramp_gate(
    experiment: ExperimentPublic, decision: Decision, action: str, now: datetime
) -> tuple[bool, str]:
    config: ExperimentCreate = experiment.config
    step = config.ramp[experiment.step]
    held = (now - as_utc(experiment.step_started_at)).total_seconds()
    if decision.action == "halt":
        return False, "the analysis cannot compare the arms yet"
    if action == "rollback" or decision.action == "rollback":
        return False, "the verdict is rollback"
    if held < step.min_duration_s:
        return False, f"step {experiment.step} held {held:.0f} s of {step.min_duration_s:.0f} s"
    runs = decision.srm.observed if decision.srm is not None else {}
    short = {arm: n for arm, n in runs.items() if n < step.min_runs}
    if short or not runs:
        return False, f"step {experiment.step} needs {step.min_runs} runs per arm, has {runs}"
    return True, "gate passed"


def _final_words(experiment: ExperimentPublic, v: Verdict) -> str:
    """Why a final verdict that was not promoted or rolled back ends the experiment."""
    first = v.reasons[0]["message"] if v.reasons else "no difference found"
    if v.action == "continue":
        return f"inconclusive at the planned horizon: {first}"
    switch = "auto_promote" if v.action == "promote" else "auto_rollback"
    return (
        f"final at the planned horizon: {v.action} {v.winner or ''}".rstrip()
        + f" ({first}); {switch} is off or the ramp is not at its last step: act by hand"
    )


def _apply(
    session: Session, experiment: ExperimentPublic, v: Verdict, decision: Decision, now: datetime
) -> tuple[str | None, list[dict[str, Any]]]:
    """Act on the verdict; what was applied, and the reasons with the ramp's words added."""
    config: ExperimentCreate = experiment.config
    reasons = list(v.reasons)
    last_step = not config.ramp or experiment.step == len(config.ramp) - 1
    words = reasons[0]["message"] if reasons else v.action
    if v.action == "halt":
        halts = list(v.halts)
        if _change(session, experiment, status="halted", halted_at=now, halt_reasons=halts):
            return "halt", reasons
    elif v.action == "rollback" and config.auto_rollback:
        zero = [{"version": a["version"], "share": 0.0} for a in experiment.arms]
        if _end(session, experiment, status="rolled_back", outcome=words, arms=zero):
            return "rollback", reasons
    elif v.action == "promote" and config.auto_promote and last_step and v.winner:
        if _end(session, experiment, status="promoted", outcome=words, arms=experiment.arms):
            session.flush()  # the label's guard must see the experiment ended
            set_label(session, workflow=experiment.workflow, label=experiment.label,
                      version=v.winner, actor=ACTOR)  # fmt: skip
            return "promote", reasons
    elif v.final:
        zero = [{"version": a["version"], "share": 0.0} for a in experiment.arms]
        outcome = _final_words(experiment, v)
        if _end(session, experiment, status="stopped", outcome=outcome, arms=zero):
            return "end", reasons
    elif config.ramp and not last_step:
        passed, why = _ramp_gate(experiment, decision, v.action, now)
        if not passed:
            reasons.append(reason("ramp_held", f"the ramp stays at step {experiment.step}: {why}"))
        else:
            step = experiment.step + 1
            arms = config.shares_at(step)
            if _change(session, experiment, step=step, step_started_at=now, arms=arms):
                return "ramp", reasons
    return None, reasons


def evaluate(
    session: Session, *, experiment_id: int, now: datetime | None = None
) -> Evaluation | None:
    """Analyse one running experiment and act on its verdict (``applied``: ``halt``,
    ``rollback``, ``promote``, ``end``, ``ramp`` or ``None``); ``None`` when it is not
    running."""
    now = now or utcnow()
    experiment, decision, cuped, runs = analyse(session, experiment_id=experiment_id)
    if experiment.status != "running":
        return None
    statistics = _statistics(experiment, decision, cuped, runs)
    last = last_run_at(session, experiment_id)
    v = verdict(experiment, decision, statistics["metrics"], last_run=last, now=now)
    applied, reasons = _apply(session, experiment, v, decision, now)
    # What acted is what is stored: the verdict's action and reasons, the analysis' beside.
    statistics["analysis"] = {k: statistics[k] for k in ("action", "winner", "reasons")}
    statistics.update(action=v.action, winner=v.winner, reasons=reasons, final=v.final)
    if applied is not None:
        target = f"{experiment.workflow}:{experiment.label}"
        audit(session, actor=ACTOR, action=f"experiment.{applied}", target_kind="experiment",
              target=str(experiment_id),
              before={"status": "running", "step": experiment.step, "arms": experiment.arms},
              after={"target": target, "action": v.action, "applied": applied,
                     "reasons": reasons, "statistics": statistics})  # fmt: skip
    evaluation = Evaluation(now, experiment.step, v.action, applied, reasons, statistics)
    record_look(session, experiment_id=experiment.id, at=now, step=experiment.step,
                action=v.action, metrics=statistics["metrics"])  # fmt: skip
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
                     "reasons": evaluation.reasons,
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
