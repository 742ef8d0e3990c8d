"""The step cache: completed steps' outputs, so a resumed run neither re-runs nor re-bills them.

Entries live under two scopes. ``run:<run id>:<key>`` holds every completed step of a run, which
is what resume reads. ``shared:<key>`` holds steps of nodes that opted in with ``cache:``, reused
by any run with the same definition, node and resolved inputs: generative calls are not
deterministic, so sharing results between users is a choice the workflow author makes, not a
default.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.codec import dumps, loads

__all__ = ["CachedStep", "MemoryStepCache", "SQLiteStepCache", "StepCache"]


@dataclass(frozen=True, slots=True)
class CachedStep:
    outputs: dict[str, Any]
    cost_usd: float = 0.0
    usage: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1

    def encode(self) -> str:
        return dumps(
            {
                "outputs": self.outputs,
                "cost_usd": self.cost_usd,
                "usage": self.usage,
                "meta": self.meta,
                "attempts": self.attempts,
            }
        )

    @classmethod
    def decode(cls, text: str) -> CachedStep:
        data = loads(text)
        return cls(
            outputs=data["outputs"],
            cost_usd=float(data.get("cost_usd", 0.0)),
            usage=data.get("usage") or {},
            meta=data.get("meta") or {},
            attempts=int(data.get("attempts", 1)),
        )


@runtime_checkable
class StepCache(Protocol):
    async def get(self, key: str) -> CachedStep | None: ...

    async def put(self, key: str, step: CachedStep, *, ttl_s: float | None = None) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStepCache:
    """In-process cache: resume within one process, and the default for tests and notebooks."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[CachedStep, float | None]] = {}

    async def get(self, key: str) -> CachedStep | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        step, expires = entry
        if expires is not None and expires < time.time():
            del self._entries[key]
            return None
        return step

    async def put(self, key: str, step: CachedStep, *, ttl_s: float | None = None) -> None:
        self._entries[key] = (step, None if ttl_s is None else time.time() + ttl_s)

    async def aclose(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class SQLiteStepCache:
    """A file-backed cache that survives the process: resume after a crash or a restart.

    WAL with ``synchronous=NORMAL``: a committed step survives a process crash (the case resume
    exists for) without an fsync per step; only an OS crash can lose the last few steps, which
    then simply run again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS step_cache ("
            " key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL, created_at REAL NOT NULL)"
        )

    async def get(self, key: str) -> CachedStep | None:
        row = self._db.execute(
            "SELECT value, expires_at FROM step_cache WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        if row[1] is not None and row[1] < time.time():
            self._db.execute("DELETE FROM step_cache WHERE key = ?", (key,))
            return None
        return CachedStep.decode(row[0])

    async def put(self, key: str, step: CachedStep, *, ttl_s: float | None = None) -> None:
        now = time.time()
        self._db.execute(
            "INSERT OR REPLACE INTO step_cache (key, value, expires_at, created_at)"
            " VALUES (?, ?, ?, ?)",
            (key, step.encode(), None if ttl_s is None else now + ttl_s, now),
        )

    async def purge_expired(self) -> int:
        cur = self._db.execute(
            "DELETE FROM step_cache WHERE expires_at IS NOT NULL AND expires_at < ?", (time.time(),)
        )
        return cur.rowcount

    async def aclose(self) -> None:
        self._db.close()
