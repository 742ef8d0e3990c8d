"""Retention on SQLite and PostgreSQL: the sweep deletes exactly the ended runs older than
``run_retention_days``, in batches of ``run_retention_batch``, with their traces, steps,
outcomes and idempotency keys; experiment statistics, decisions and audit rows stay as they were.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from control_plane.kit.time import utcnow
from control_plane.runs import retention
from control_plane.store.db import make_session_factory, session_scope
from control_plane.store.tables import (
    ArmStatRow,
    AuditRow,
    ExperimentDecisionRow,
    ExperimentRow,
    IdempotencyKeyRow,
    OutcomeRow,
    RunRow,
    RunStepRow,
    RunTraceRow,
    WorkflowRow,
)
from tests.fixtures import GREET, app_client, app_state, seed_workflow

NOW = utcnow()
KEPT_TABLES = (ArmStatRow, ExperimentDecisionRow, ExperimentRow, AuditRow, WorkflowRow)


def _run(session: Session, run_id: str, *, age_days: float, status: str, experiment: int) -> None:
    created = NOW - timedelta(days=age_days)
    session.add(
        RunRow(
            id=run_id,
            workflow="greet",
            version="v1",
            status=status,
            reason="label",
            experiment_id=experiment,
            arm="v1",
            created_at=created,
        )
    )
    session.flush()  # the run row before the rows that name it (foreign keys)
    session.add(RunTraceRow(run_id=run_id, attempt=1, trace={"steps": []}))
    session.add(RunStepRow(run_id=run_id, key=f"k-{run_id}", value="{}", created_at=created))
    session.add(OutcomeRow(run_id=run_id, metric="clicked", value=1.0, recorded_at=created))
    session.add(
        IdempotencyKeyRow(
            principal="admin",
            key=f"key-{run_id}",
            request_hash="0" * 64,
            run_id=run_id,
            status="done" if status in retention.ENDED else "in_progress",
            created_at=created,
        )
    )


def _seed(session: Session) -> tuple[set[str], set[str]]:
    """Runs on both sides of a 30-day retention; the ids expected gone and those kept."""
    workflow = WorkflowRow(name="greet")
    session.add(workflow)
    session.flush()
    assert workflow.id is not None
    experiment = ExperimentRow(
        workflow_id=workflow.id,
        label="prod",
        name="greet-test",
        salt="s",
        baseline="v1",
        arms=[{"version": "v2", "share": 0.5}],
        config={"metrics": ["clicked"]},
        created_by="admin",
    )
    session.add(experiment)
    session.flush()
    assert experiment.id is not None
    session.add(
        ArmStatRow(
            experiment_id=experiment.id,
            step=0,
            arm="v1",
            metric="clicked",
            kind="proportion",
            n=12,
            total=7.0,
            total_sq=7.0,
        )
    )
    session.add(
        ExperimentDecisionRow(
            experiment_id=experiment.id, step=0, action="continue", reasons=[], statistics={}
        )
    )
    session.add(AuditRow(actor="admin", action="experiment.start", target_kind="x", target="y"))
    gone: set[str] = set()
    kept: set[str] = set()
    for i in range(7):  # old and ended: deleted
        run_id = f"old-{i}"
        _run(
            session,
            run_id,
            age_days=31 + i,
            status="succeeded" if i % 2 else "failed",
            experiment=experiment.id,
        )
        gone.add(run_id)
    for i, status in enumerate(("queued", "running")):  # old but not ended: kept
        _run(session, f"old-{status}", age_days=40 + i, status=status, experiment=experiment.id)
        kept.add(f"old-{status}")
    for i in range(3):  # recent: kept
        _run(session, f"new-{i}", age_days=29 - i, status="succeeded", experiment=experiment.id)
        kept.add(f"new-{i}")
    session.commit()
    return gone, kept


def _snapshot(session: Session) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table in KEPT_TABLES:
        rows = session.exec(select(table)).all()
        out[table.__tablename__] = sorted((r.model_dump() for r in rows), key=repr)
    return out


def _ids(session: Session, column: Any) -> set[str]:
    return {str(v) for v in session.exec(select(column)).all()}


def test_the_sweep_deletes_exactly_the_old_ended_runs_in_batches(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = make_session_factory(db_engine)
    with session_scope(factory) as session:
        gone, kept = _seed(session)
        before = _snapshot(session)

    batches: list[int] = []
    real = retention.delete_batch

    def counting(session: Session, *, cutoff: datetime, limit: int) -> int:
        batches.append(count := real(session, cutoff=cutoff, limit=limit))
        return count

    monkeypatch.setattr(retention, "delete_batch", counting)
    deleted = asyncio.run(retention.sweep(factory, days=30, batch=3, now=NOW))
    assert deleted == len(gone) == 7
    assert batches == [3, 3, 1]  # three transactions of at most three runs, oldest first

    with session_scope(factory) as session:
        assert _ids(session, RunRow.id) == kept
        assert _ids(session, RunTraceRow.run_id) == kept
        assert _ids(session, RunStepRow.run_id) == kept
        assert _ids(session, OutcomeRow.run_id) == kept
        assert _ids(session, IdempotencyKeyRow.run_id) == kept
        assert _snapshot(session) == before  # statistics, decisions, audit: untouched
    # A second sweep finds nothing more; unset retention deletes nothing at all.
    assert asyncio.run(retention.sweep(factory, days=30, batch=3, now=NOW)) == 0
    assert (
        asyncio.run(retention.sweep(factory, days=None, batch=3, now=NOW + timedelta(days=99))) == 0
    )


def test_a_sweep_deletes_at_most_its_batches_and_the_next_goes_on(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with session_scope(factory) as session:
        _, kept = _seed(session)
    first = asyncio.run(retention.sweep(factory, days=30, batch=2, now=NOW, max_batches=2))
    assert first == 4
    with session_scope(factory) as session:
        left = _ids(session, RunRow.id)
        # Oldest first: the four oldest ended runs went.
        assert left == kept | {"old-0", "old-1", "old-2"}
    assert asyncio.run(retention.sweep(factory, days=30, batch=2, now=NOW)) == 3


def test_the_servers_sweep_applies_the_setting_and_a_retried_key_runs_again(
    database_url: str, admin_key: str
) -> None:
    with app_client(database_url, admin_key, run_retention_days=1, run_retention_batch=2) as client:
        seed_workflow(client, "greet", {"v1": GREET}, {"prod": "v1"})
        body = {"workflow": "greet", "input": {"prompt": "hi"}}
        first = client.post("/v1/run", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 200, first.text
        old_id = first.json()["run_id"]
        fresh = [client.post("/v1/run", json=body).json()["run_id"] for _ in range(2)]
        factory = app_state(client).session_factory
        with session_scope(factory) as session:
            row = session.get(RunRow, old_id)
            assert row is not None
            row.created_at = utcnow() - timedelta(days=2)
            session.add(row)
        runs = app_state(client).runs
        client.portal.call(runs.sweep)  # type: ignore[union-attr]
        listed = {r["run_id"] for r in client.get("/v1/runs?workflow=greet").json()}
        assert listed == set(fresh)
        assert client.get(f"/v1/runs/{old_id}").status_code == 404
        # The key's record went with its run: a retry runs again instead of replaying an
        # answer whose run is gone.
        again = client.post("/v1/run", json=body, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200, again.text
        assert again.json()["run_id"] != old_id
        with session_scope(factory) as session:
            count = session.exec(select(func.count()).select_from(IdempotencyKeyRow)).one()
            assert count == 1
            assert (
                session.exec(select(col(RunRow.id)).where(col(RunRow.id) == old_id)).first() is None
            )
