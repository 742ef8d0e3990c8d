"""UTC datetimes: the one clock rows are stamped with, and the one way a stored or received
time is read back (SQLite hands back naive values and compares text without offsets)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["UtcDatetime", "as_utc", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A datetime in UTC. Rows are stored in UTC, SQLite hands them back naive, and it compares
    text without offsets, so every stored or compared time goes through here; a naive value is
    read as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: earlier or later than any row
        edge = datetime.min if value.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


# A schema field that is always UTC, whatever the store or the client sent.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
