"""Which exceptions from the store are outages, and the typed 503 each one is.

An outage is not a bug in the request or in rollgraph: the database is unreachable, refused or
dropped the connection, or no pooled connection came free within the pool timeout. A client
should retry it, so it is a 503 with ``Retry-After`` and a stable code, never a 500:

* ``store_busy``: SQLite refused a write transaction that raced another writer ("database is
  locked"); nothing was stored and a retry succeeds at once;
* ``store_unavailable``: every other ``OperationalError`` and ``InterfaceError`` (SQLAlchemy's
  wrappers or psycopg's own), and the pool's ``TimeoutError``.

Errors that say the statement itself is wrong (``IntegrityError``, ``DataError``,
``ProgrammingError``) are not here: the edge validates what reaches the store, so one of those
is a bug that must stay visible as a 500 with its traceback in the log.
"""

from __future__ import annotations

import psycopg
from sqlalchemy import exc as sa_exc

from control_plane.errors import StoreBusy, StoreUnavailable, Unavailable

__all__ = ["OUTAGES", "as_unavailable"]

# The exception classes the API answers with a 503: registered one by one with the app, so
# that they are handled like typed errors (which keeps the client's connection open) and not
# by the catch-all, which re-raises to the server after answering and so drops the connection.
OUTAGES: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def as_unavailable(exc: BaseException) -> Unavailable:
    """The typed error an outage in ``OUTAGES`` is answered with. The message names the
    exception's class only: its text can hold the database's host, user or query."""
    if "database is locked" in str(exc):
        return StoreBusy("the store was busy; nothing was changed: retry")
    return StoreUnavailable(
        f"the store is unavailable ({type(exc).__name__}); the request was not completed: "
        "retry shortly"
    )
