"""The store on SQLite and PostgreSQL: migrations match the models, engines are configured for
their backend; and the settings that choose the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

import control_plane.store.tables as models
from control_plane import store as store_package
from control_plane.settings import DEV_ADMIN_KEY, Settings, get_settings
from control_plane.store import (
    create_db_engine,
    current_revision,
    head_revision,
    make_session_factory,
    migrate,
    session_scope,
    upgrade_to_head,
)

MODEL_TABLES = {
    models.WorkflowRow.__tablename__,
    models.VersionRow.__tablename__,
    models.LabelRow.__tablename__,
    models.LabelEventRow.__tablename__,
    models.AuditRow.__tablename__,
    models.ApiKeyRow.__tablename__,
    models.IdempotencyKeyRow.__tablename__,
    models.RegistryStateRow.__tablename__,
}
# Revisions are numbered files; the newest is the head.
LATEST_REVISION = max(
    p.name[:4] for p in (Path(store_package.__file__).parent / "alembic" / "versions").glob("0*.py")
)


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_migration_creates_exactly_the_model_tables(empty_engine: Engine) -> None:
    assert _tables(empty_engine) == set()
    assert current_revision(empty_engine) is None

    upgrade_to_head(empty_engine)

    assert current_revision(empty_engine) == head_revision() == LATEST_REVISION
    assert _tables(empty_engine) == set(SQLModel.metadata.tables) >= MODEL_TABLES
    inspector = inspect(empty_engine)
    for name, table in SQLModel.metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert columns == set(table.columns.keys()), name
    # Autogenerate sees nothing to do: types, nullability, indexes, uniques and keys all agree.
    with empty_engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []


def test_upgrading_twice_is_a_no_op_and_keeps_data(db_engine: Engine) -> None:
    with session_scope(make_session_factory(db_engine)) as session:
        session.add(models.WorkflowRow(name="kept"))

    upgrade_to_head(db_engine)

    assert current_revision(db_engine) == LATEST_REVISION
    with make_session_factory(db_engine)() as session:
        assert session.exec(select(models.WorkflowRow.name)).all() == ["kept"]


def test_upgrade_from_a_url(database_url: str) -> None:
    upgrade_to_head(database_url)
    engine = create_db_engine(database_url)
    try:
        assert current_revision(engine) == LATEST_REVISION
        assert _tables(engine) >= MODEL_TABLES
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(
        models.VersionRow(
            workflow_id=999,
            version="v1",
            digest="sha256:x",
            definition="{}",
            source="",
            created_by="t",
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_session_scope_rolls_back_on_error(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)

    def fail_inside_a_unit_of_work() -> None:
        with session_scope(factory) as session:
            session.add(models.WorkflowRow(name="lost"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside_a_unit_of_work()
    with factory() as session:
        assert session.exec(select(models.WorkflowRow)).all() == []


def test_sqlite_engine_uses_wal_and_creates_its_directory(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'x.db'}")
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()
    assert (tmp_path / "nested" / "dir" / "x.db").exists()


# Settings -------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DATABASE_URL", "ROLLGRAPH_DATABASE_URL", "ROLLGRAPH_ENV", "ROLLGRAPH_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_defaults(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.chdir(tmp_path)
    settings = Settings()
    assert settings.env == "dev"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'rollgraph.db'}"
    assert settings.admin_key == DEV_ADMIN_KEY
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.run_deadline_s == 60
    assert DEV_ADMIN_KEY not in repr(settings)


def test_settings_read_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql+psycopg://plain/db")
    assert Settings().database_url == "postgresql+psycopg://plain/db"
    clean_env.setenv("ROLLGRAPH_DATABASE_URL", "postgresql+psycopg://prefixed/db")
    clean_env.setenv("ROLLGRAPH_MAX_BODY_BYTES", "2048")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://prefixed/db"
    assert settings.max_body_bytes == 2048


@pytest.mark.parametrize("key", [DEV_ADMIN_KEY, "short", "a" * 40])
def test_weak_admin_key_refused_outside_dev(clean_env: pytest.MonkeyPatch, key: str) -> None:
    clean_env.setenv("ROLLGRAPH_ENV", "prod")
    clean_env.setenv("ROLLGRAPH_ADMIN_KEY", key)
    with pytest.raises(ValidationError, match="ROLLGRAPH_ADMIN_KEY"):
        Settings()


def test_strong_admin_key_accepted_in_prod(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ROLLGRAPH_ENV", "prod")
    clean_env.setenv("ROLLGRAPH_ADMIN_KEY", "Zq8-pL2mV7xR4tK9wB3nY6cJ1hF5")
    get_settings.cache_clear()
    try:
        assert get_settings().env == "prod"
        assert get_settings() is get_settings()
    finally:
        get_settings.cache_clear()


def test_0006_down_and_up_keeps_finished_runs_and_their_newest_trace(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    with session_scope(factory) as session:
        for run_id, status in (("done", "succeeded"), ("flying", "running")):
            session.add(
                models.RunRow(id=run_id, workflow="w", version="v1", status=status, reason="pin")
            )
        session.flush()
        session.add(models.RunTraceRow(run_id="done", attempt=1, trace={"attempt": 1}))
        session.add(models.RunTraceRow(run_id="done", attempt=2, trace={"attempt": 2}))
        session.add(models.RunStepRow(run_id="done", key="k", value="{}"))

    migrate(db_engine, "0005")

    assert current_revision(db_engine) == "0005"
    assert "run_step" not in _tables(db_engine)
    with db_engine.connect() as connection:
        runs = connection.execute(text("SELECT id, status FROM run")).all()
        traces = connection.execute(text("SELECT run_id, trace FROM run_trace")).all()
    assert runs == [("done", "succeeded")]  # a run in flight has no place in the old schema
    assert [(r, json.loads(t) if isinstance(t, str) else t) for r, t in traces] == [
        ("done", {"attempt": 2})
    ]

    upgrade_to_head(db_engine)

    with session_scope(factory) as session:
        trace = session.get(models.RunTraceRow, ("done", 1))
        assert trace is not None and trace.trace == {"attempt": 2}
        assert session.get(models.RunRow, "done").attempt == 1  # type: ignore[union-attr]
