"""Engine and session creation for SQLite (the embedded default) and PostgreSQL.

Services never commit: ``session_scope`` is the one place outside the HTTP layer where a unit of
work ends, committing on success and rolling back on any error.

Admission control (``UnitGate``): the request path's units of work are bounded per process, at
the pool's size plus a few waiting for a connection (``Settings.db_admission_limit``). Past it a
request is answered 503 ``store_busy`` with ``Retry-After`` at once: when the store is slow or
stalled, queueing more requests behind the pool only makes each of them wait out the pool
timeout and then fail anyway, holding a client and a thread all the while.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from control_plane.errors import StoreBusy

__all__ = [
    "Unit",
    "UnitGate",
    "create_db_engine",
    "is_sqlite",
    "make_session_factory",
    "run_unit",
    "session_scope",
    "size_threads",
]

SessionFactory = Callable[[], Session]
T = TypeVar("T")


class Unit(Protocol):
    """Runs ``work(session)`` in a unit of work of its own (``run_unit``) and returns its
    result once committed."""

    def __call__(self, work: Callable[[Session], T], /) -> Awaitable[T]: ...


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(
    url: str | URL,
    *,
    echo: bool = False,
    pool_size: int | None = None,
    pool_timeout_s: float | None = None,
) -> Engine:
    """An engine configured for its backend.

    SQLite: WAL (readers do not block the writer), foreign keys enforced (SQLite leaves them off
    by default), usable from the server's thread pool, and the parent directory created so a fresh
    checkout runs. PostgreSQL: connections are pinged before use, so a restarted database costs
    one retry instead of an error per pooled connection. ``pool_size`` connections at most (no
    overflow: the size is the bound the request path is sized against), waited for at most
    ``pool_timeout_s`` (SQLAlchemy's ``TimeoutError``, which the API renders as a 503).
    """
    parsed = make_url(url)
    pool: dict[str, Any] = {}
    if pool_size is not None:
        pool.update(pool_size=pool_size, max_overflow=0)
    if pool_timeout_s is not None:
        pool["pool_timeout"] = pool_timeout_s
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, echo=echo, pool_pre_ping=True, **pool)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if in_memory:
        # Every connection to :memory: is a new empty database: share one.
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(pool)
    engine = create_engine(parsed, echo=echo, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas(wal=not in_memory))
    return engine


def _sqlite_pragmas(*, wal: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
                # Safe with WAL (a crash loses at most the last commits, never corrupts).
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return on_connect


def make_session_factory(engine: Engine) -> SessionFactory:
    """Sessions whose objects stay readable after commit (responses are built after it)."""
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


@contextmanager
def session_scope(factory: SessionFactory) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def run_unit(factory: SessionFactory, work: Callable[[Session], T]) -> T:
    """``work`` in a unit of work of its own, in a worker thread (the drivers are synchronous),
    committed before this returns, so its connection is back in the pool. Not abandoned on
    cancel: a caller that goes away still lets the unit commit or roll back."""

    def run() -> T:
        with session_scope(factory) as session:
            return work(session)

    return await anyio.to_thread.run_sync(run)


class UnitGate:
    """A ``Unit`` that admits at most ``limit`` units of work in flight in this process (running
    or waiting for a connection) and refuses the next one at once with ``StoreBusy`` (503,
    ``Retry-After``). Counted on the event loop, where every caller awaits it."""

    def __init__(self, factory: SessionFactory, *, limit: int) -> None:
        if limit < 1:
            raise ValueError("an admission limit admits at least one unit")
        self._factory = factory
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, work: Callable[[Session], T], /) -> T:
        if self.in_flight >= self.limit:
            raise StoreBusy(
                f"the store is saturated ({self.in_flight} units of work in flight in this "
                "process); nothing was changed: retry"
            )
        self.in_flight += 1
        try:
            return await run_unit(self._factory, work)
        finally:
            self.in_flight -= 1


def size_threads(limit: int, *, spare: int = 8) -> int:
    """Raise the worker-thread limit (anyio's default limiter, shared with the server's ``def``
    handlers) to at least ``limit`` units plus ``spare`` threads for everything else, so that
    every admitted unit can hold its connection at once; never lowers it. The limit now."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    if limiter.total_tokens < limit + spare:
        limiter.total_tokens = limit + spare
    return int(limiter.total_tokens)
