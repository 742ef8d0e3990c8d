"""``GET /v1/runs`` filters are read through indexes on PostgreSQL: ``EXPLAIN`` of the very query
the endpoint runs, on a table with enough rows (60,000 runs over 30 workflows, analysed) that
the planner would rather scan and sort it whole if no index served the filter and the order.
A workflow with few runs among many is the case the workflow indexes are for: reading all runs
newest first and filtering would go through most of the table before finding a page of them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from control_plane.kit.time import utcnow
from control_plane.runs.repository import runs_query

ROWS = 60_000
NOW = utcnow()

FILTERS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"workflow": "rare"}, ("ix_run_workflow_created", "ix_run_workflow_status")),
    ({"workflow": "rare", "status": "failed"}, ("ix_run_workflow_status",)),
    ({"workflow": "rare", "version": "v2"}, ("ix_run_workflow_version",)),
    ({"workflow": "rare", "user_id": "u-7"}, ("ix_run_workflow_user",)),
    ({"workflow": "rare", "label": "prod"}, ("ix_run_workflow_created", "ix_run_workflow_status")),
    ({"status": "failed"}, ("ix_run_status",)),
    ({}, ("ix_run_created_at",)),
    ({"since": NOW - timedelta(hours=1)}, ("ix_run_created_at",)),
    (
        {"workflow": "rare", "since": NOW - timedelta(days=2), "until": NOW - timedelta(days=1)},
        ("ix_run_workflow_created", "ix_run_workflow_status"),
    ),
]


@pytest.fixture
def loaded(db_engine: Engine) -> Engine:
    if db_engine.dialect.name != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL, the store for large deployments")
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO run (id, workflow, version, status, reason, mode, cost_usd, "
                "attempt, created_at) "
                "SELECT md5(i::text), "
                "CASE WHEN i % 997 = 0 THEN 'rare' ELSE 'wf' || (i % 30) END, 'v' || (i % 5), "
                "CASE WHEN i % 7 = 0 THEN 'failed' ELSE 'succeeded' END, 'label', "
                "CASE WHEN i % 4 = 0 THEN 'async' ELSE 'sync' END, 0, 1, "
                ":now - make_interval(secs => i * 10) FROM generate_series(1, :rows) AS i"
            ),
            {"now": NOW, "rows": ROWS},
        )
        connection.execute(text("ANALYZE run"))
    return db_engine


@pytest.mark.parametrize(("filters", "indexes"), FILTERS, ids=lambda v: str(v)[:60])
def test_runs_filters_use_an_index(
    loaded: Engine, filters: dict[str, Any], indexes: tuple[str, ...]
) -> None:
    query = runs_query(**filters, limit=100)
    compiled = query.compile(dialect=loaded.dialect, compile_kwargs={"literal_binds": True})
    with loaded.connect() as connection:
        plan = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {compiled}")))
    assert "Seq Scan" not in plan, plan
    assert any(index in plan for index in indexes), plan
    # Read in index order and stopped at the limit, or the few matching runs sorted: never a
    # sort of a large share of the table.
    for line in plan.splitlines():
        if line.strip().startswith("->  Sort"):
            rows = re.search(r"rows=(\d+)", line)
            assert rows is not None and int(rows.group(1)) <= 1_000, plan
