"""Two requests recording the same outcome at once, on SQLite and PostgreSQL: the database
settles which one stores it, the other answers as a retry would (``unchanged``) or, for another
value, with a 409, and the experiment counts the outcome once.

Before, the second insert of the outcome's primary key surfaced as an ``IntegrityError``: a 500
under load with a running experiment (the arm statistics' upsert flushed it), a 409 "retry"
without one, where a client's retry of the same value expects 200.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from control_plane.errors import Conflict
from control_plane.outcomes.service import record_outcomes
from control_plane.store.db import create_db_engine
from control_plane.store.tables import ArmUnitStatRow, OutcomeRow
from tests.fixtures import GREET, GREET_LARGE, seed_workflow

EXPERIMENT: dict[str, Any] = {
    "workflow": "greet",
    "candidates": [{"version": "v2", "percent": 50}],
    "primary": {"name": "converted", "kind": "proportion", "direction": "increase", "mde": 0.1},
    "min_runs_per_arm": 10,
}


@pytest.fixture
def run_id(api: TestClient) -> str:
    seed_workflow(api, "greet", {"v1": GREET, "v2": GREET_LARGE}, {"prod": "v1"})
    assert api.post("/v1/experiments", json=EXPERIMENT).status_code == 201
    response = api.post("/v1/run", json={"workflow": "greet", "input": {"prompt": "hi"}})
    assert response.status_code == 200, response.json()
    assert response.json()["experiment_id"] is not None
    run: str = response.json()["run_id"]
    return run


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    db = create_db_engine(database_url)
    yield db
    db.dispose()


def _waiting_on_a_lock(engine: Engine) -> bool:
    if engine.dialect.name != "postgresql":
        return True  # SQLite's second writer waits on the file lock (busy timeout) regardless
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(connection.execute(text(query)).scalar_one())


def _race(engine: Engine, run_id: str, first: bool, second: bool) -> dict[str, Any] | Exception:
    """Record ``first`` in an open transaction, start a second request recording ``second``,
    and commit the first once the second waits for it; the second request's answer."""
    answer: dict[str, Any] | Exception = RuntimeError("the second request did not finish")

    def other() -> None:
        nonlocal answer
        with Session(engine) as session:
            try:
                answer = record_outcomes(session, run_id=run_id, outcomes={"converted": second})
                session.commit()
            except Exception as exc:  # the test reads what the request would have raised
                answer = exc

    with Session(engine) as session:
        assert record_outcomes(session, run_id=run_id, outcomes={"converted": first}) == {
            "converted": "recorded"
        }
        thread = threading.Thread(target=other)
        thread.start()
        for _ in range(500):
            if _waiting_on_a_lock(engine) or not thread.is_alive():
                break
            thread.join(0.01)
        session.commit()
    thread.join(30)
    return answer


def _counted(engine: Engine, run_id: str) -> tuple[list[float], float]:
    with Session(engine) as session:
        values = session.exec(select(OutcomeRow.value).where(OutcomeRow.run_id == run_id)).all()
        arms = session.exec(
            select(ArmUnitStatRow).where(ArmUnitStatRow.metric == "converted")
        ).all()
        return list(values), sum(arm.sum_n for arm in arms)


def test_the_same_outcome_twice_at_once_is_recorded_once(engine: Engine, run_id: str) -> None:
    assert _race(engine, run_id, True, True) == {"converted": "unchanged"}
    assert _counted(engine, run_id) == ([1.0], 1.0)


def test_another_value_at_once_is_a_conflict(engine: Engine, run_id: str) -> None:
    answer = _race(engine, run_id, True, False)
    assert isinstance(answer, Conflict), answer
    assert "already has converted = 1" in str(answer)
    assert _counted(engine, run_id) == ([1.0], 1.0)


def test_concurrent_requests_through_the_api_answer_200(api: TestClient, run_id: str) -> None:
    answers: list[int] = []

    def send() -> None:
        response = api.post(f"/v1/runs/{run_id}/outcome", json={"converted": True})
        answers.append(response.status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == [200] * 8
