"""``BatchWriter`` (group commit), on SQLite and PostgreSQL: an idle writer commits a unit at
once; units queued while a commit is in progress share the next transaction (at most
``max_batch`` each); they run in submission order; each caller gets its own result or exception,
only after the commit; a unit that fails its batch fails alone while the others' writes are
committed; a unit whose caller gave up is not applied; closing writes everything queued, and
afterwards the writer refuses work with ``WriterClosed``.

The units write to a table of the test's own (``probe``) in the per-test database, so what was
committed is read back through another connection. A unit that holds the writer thread (until
the test releases it) is how the tests queue work behind a commit in progress.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from control_plane.runs.writer import BatchWriter, WriterClosed
from control_plane.store.db import SessionFactory, make_session_factory

WAIT_S = 10.0  # how long a test waits for the writer thread before it fails


@pytest.fixture
def factory(empty_engine: Engine) -> SessionFactory:
    with empty_engine.begin() as connection:
        connection.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT)"))
    return make_session_factory(empty_engine)


@pytest.fixture
def writer(factory: SessionFactory) -> Iterator[BatchWriter]:
    writer = BatchWriter(factory)
    yield writer
    writer.close()


def committed(engine: Engine) -> dict[int, str]:
    """The probe rows as another connection reads them (only what was committed)."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, note FROM probe ORDER BY id")).all()
    return {row.id: row.note for row in rows}


def insert(row_id: int, note: str = "") -> Callable[[Session], int]:
    """A unit of work that writes one row and returns its id."""

    def work(session: Session) -> int:
        session.execute(
            text("INSERT INTO probe (id, note) VALUES (:id, :note)"),
            {"id": row_id, "note": note},
        )
        return row_id

    return work


class Hold:
    """A unit that writes row 0, then keeps the writer thread (and its transaction) until
    ``release``: whatever is posted meanwhile waits for the next batch."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.released = threading.Event()

    def __call__(self, session: Session) -> str:
        insert(0, "held")(session)
        self.started.set()
        if not self.released.wait(WAIT_S):
            raise TimeoutError("the test never released the writer")
        return "held"

    def hold(self, writer: BatchWriter) -> Future[str]:
        future = writer.post(self)
        assert self.started.wait(WAIT_S), "the writer did not start the held unit"
        return future

    def release(self) -> None:
        self.released.set()


def test_an_idle_writer_commits_a_unit_without_waiting_for_a_batch_to_fill(
    writer: BatchWriter, empty_engine: Engine
) -> None:
    future = writer.post(insert(1, "alone"))
    # Nothing else is posted: the unit is committed on its own.
    assert future.result(WAIT_S) == 1
    assert committed(empty_engine) == {1: "alone"}
    assert (writer.batches, writer.units) == (1, 1)


def test_units_queued_during_a_commit_share_the_next_transaction(
    writer: BatchWriter, empty_engine: Engine
) -> None:
    held = Hold()
    first = held.hold(writer)
    sessions: list[Session] = []

    def unit(row_id: int) -> Callable[[Session], int]:
        def work(session: Session) -> int:
            sessions.append(session)
            return insert(row_id)(session)

        return work

    queued = [writer.post(unit(i)) for i in range(1, 11)]
    held.release()
    assert [f.result(WAIT_S) for f in queued] == list(range(1, 11))
    assert first.result(WAIT_S) == "held"
    # Two transactions for eleven units: the held one alone, then the ten queued behind it.
    assert (writer.batches, writer.units) == (2, 11)
    assert len(sessions) == 10 and all(s is sessions[0] for s in sessions)
    assert sorted(committed(empty_engine)) == list(range(11))


def test_a_batch_takes_at_most_max_batch_units_and_units_run_in_submission_order(
    factory: SessionFactory, empty_engine: Engine
) -> None:
    writer = BatchWriter(factory, max_batch=4)
    try:
        held = Hold()
        held.hold(writer)
        order: list[int] = []

        def unit(row_id: int) -> Callable[[Session], int]:
            def work(session: Session) -> int:
                order.append(row_id)
                return insert(row_id)(session)

            return work

        queued = [writer.post(unit(i)) for i in range(1, 11)]
        held.release()
        assert [f.result(WAIT_S) for f in queued] == list(range(1, 11))
    finally:
        writer.close()
    assert order == list(range(1, 11))
    assert (writer.batches, writer.units) == (1 + 3, 11)  # 1, then 4 + 4 + 2
    assert sorted(committed(empty_engine)) == list(range(11))


def test_a_caller_is_answered_only_after_its_batch_commits(
    factory: SessionFactory, empty_engine: Engine
) -> None:
    happened: list[str] = []

    class Recorded(Session):
        def commit(self) -> None:
            super().commit()
            happened.append("commit")

    writer = BatchWriter(lambda: Recorded(empty_engine, expire_on_commit=False))
    try:
        held = Hold()
        held.hold(writer)
        future = writer.post(insert(7))
        future.add_done_callback(lambda f: happened.append("answer"))
        held.release()
        assert future.result(WAIT_S) == 7
    finally:
        writer.close()
    assert happened == ["commit", "commit", "answer"]  # the held unit's commit, then its own


def test_what_a_submitter_was_answered_can_be_read_back_at_once(
    writer: BatchWriter, empty_engine: Engine
) -> None:
    async def main() -> dict[int, str]:
        assert await writer.submit(insert(7, "mine")) == 7
        return committed(empty_engine)  # by another connection, as another request would

    assert asyncio.run(main()) == {7: "mine"}


def test_each_caller_gets_its_own_result_or_exception_and_a_failing_unit_fails_alone(
    writer: BatchWriter, empty_engine: Engine
) -> None:
    def duplicate(session: Session) -> int:
        insert(99, "half of a failed unit")(session)
        return insert(0, "again")(session)  # row 0 exists: a unique violation

    held = Hold()
    held.hold(writer)
    good = writer.post(insert(1, "before"))
    bad = writer.post(duplicate)
    later = writer.post(insert(2, "after"))
    held.release()
    assert (good.result(WAIT_S), later.result(WAIT_S)) == (1, 2)
    with pytest.raises(IntegrityError):
        bad.result(WAIT_S)
    # The others' writes are committed; none of the failed unit's (its first insert included).
    assert committed(empty_engine) == {0: "held", 1: "before", 2: "after"}
    # The failed batch committed nothing; its good units were retried one transaction each.
    assert (writer.batches, writer.units) == (3, 3)


def test_an_awaiting_submitter_gets_the_exception_of_its_unit(
    writer: BatchWriter, empty_engine: Engine
) -> None:
    def broken(session: Session) -> Any:
        insert(5)(session)
        raise ValueError("a bug in the unit")

    async def main() -> None:
        with pytest.raises(ValueError, match="a bug in the unit"):
            await writer.submit(broken)
        assert await writer.submit(insert(6)) == 6  # the writer goes on

    asyncio.run(main())
    assert committed(empty_engine) == {6: ""}


def test_a_unit_whose_caller_gave_up_before_its_batch_is_not_applied(
    writer: BatchWriter, empty_engine: Engine
) -> None:
    held = Hold()
    held.hold(writer)
    abandoned = writer.post(insert(1, "abandoned"))
    kept = writer.post(insert(2, "kept"))
    assert abandoned.cancel()
    held.release()
    assert kept.result(WAIT_S) == 2
    assert committed(empty_engine) == {0: "held", 2: "kept"}


def test_close_writes_everything_queued_then_refuses_work(
    writer: BatchWriter, empty_engine: Engine
) -> None:
    held = Hold()
    held.hold(writer)
    queued = [writer.post(insert(i)) for i in range(1, 6)]
    closing = threading.Thread(target=writer.close)
    closing.start()  # close waits for the writer thread, which the held unit keeps busy
    held.release()
    closing.join(WAIT_S)
    assert not closing.is_alive()
    # Every unit queued before close was written, and its caller answered.
    assert all(f.done() for f in queued)
    assert [f.result(0) for f in queued] == [1, 2, 3, 4, 5]
    assert sorted(committed(empty_engine)) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(WriterClosed):
        writer.post(insert(6))

    async def submit() -> int:
        return await writer.submit(insert(7))

    with pytest.raises(WriterClosed):
        asyncio.run(submit())
    writer.close()  # a second close is a no-op
    assert sorted(committed(empty_engine)) == [0, 1, 2, 3, 4, 5]
