"""Process settings, read once from the environment (``ROLLGRAPH_*``, plus plain ``DATABASE_URL``).

The defaults start a development server with no configuration at all: a SQLite file under
``var/`` and a placeholder admin key. Outside ``dev`` the placeholder (or any weak key) is refused
at start-up, because a forgotten default key is a public admin API.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_ADMIN_KEY", "MIN_ADMIN_KEY_LENGTH", "Settings", "get_settings"]

DEV_ADMIN_KEY: Final = "dev-admin-key-not-for-production"
MIN_ADMIN_KEY_LENGTH: Final = 24
_WEAK_KEYS: Final = frozenset(
    {DEV_ADMIN_KEY, "admin", "changeme", "change-me", "secret", "password"}
)


def _default_database_url() -> str:
    # Resolved when settings are built, not at import: the working directory is the project's.
    return f"sqlite:///{Path.cwd() / 'var' / 'rollgraph.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROLLGRAPH_", extra="ignore", frozen=True)

    env: Literal["dev", "test", "prod"] = "dev"
    # Hosting platforms hand out a plain DATABASE_URL; the prefixed name wins when both are set.
    database_url: str = Field(
        default_factory=_default_database_url,
        validation_alias=AliasChoices("ROLLGRAPH_DATABASE_URL", "DATABASE_URL"),
    )
    admin_key: str = Field(default=DEV_ADMIN_KEY, repr=False)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    run_deadline_s: float = Field(default=60.0, gt=0)  # a sync run, answered when it ends
    async_run_deadline_s: float = Field(default=3600.0, gt=0)  # an async run (and a resume)
    # Time to store a run after its deadline: a run still `running` (or an idempotency claim
    # still in progress) after deadline + margin belongs to a process that stopped.
    run_store_margin_s: float = Field(default=30.0, gt=0)
    orphan_sweep_s: float = Field(default=30.0, gt=0)  # how often to look for such runs
    shutdown_grace_s: float = Field(default=10.0, ge=0)  # async runs left to finish on stop
    experiment_eval_s: float = Field(default=30.0, gt=0)  # how often experiments are judged
    # How often each process reads the registry's generation: the longest a change made by
    # another process (worker or replica) stays unseen by this one's cache of keys and routes.
    registry_poll_s: float = Field(default=0.1, gt=0)
    # Scale-out (several replicas and `rollgraph worker` processes): unset, everything stays in
    # this process and the store (the embedded default). Hosting platforms hand out REDIS_URL.
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("ROLLGRAPH_REDIS_URL", "REDIS_URL")
    )
    redis_prefix: str = Field(default="rollgraph", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    # A Redis call slower than this counts as Redis being away: a sync run falls back to its
    # local cache rather than wait on it.
    redis_timeout_s: float = Field(default=0.5, gt=0)
    # A queued run whose worker has not reported for this long is handed to another worker.
    queue_visibility_timeout_s: float = Field(default=30.0, gt=0)
    queue_max_deliveries: int = Field(default=3, ge=1)  # then it goes to the dead-letter stream
    worker_concurrency: int = Field(default=4, ge=1)  # runs in flight per worker process
    # Store connections per process (PostgreSQL; SQLite serialises writers anyway). A request
    # that finds them all busy for db_pool_timeout_s gets a 503 with Retry-After
    # instead of queueing behind a stalled store for half a minute.
    db_pool_size: int = Field(default=15, ge=1, le=1000)
    db_pool_timeout_s: float = Field(default=5.0, gt=0, le=300)

    @model_validator(mode="after")
    def _refuse_weak_admin_key(self) -> Settings:
        if self.env == "dev":
            return self
        key = self.admin_key
        if key in _WEAK_KEYS or len(key) < MIN_ADMIN_KEY_LENGTH or len(set(key)) < 8:
            raise ValueError(
                f"ROLLGRAPH_ADMIN_KEY is the development placeholder or too weak for "
                f"env={self.env!r}: set a random key of at least {MIN_ADMIN_KEY_LENGTH} "
                f"characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self


@functools.cache
def get_settings() -> Settings:
    """The process's settings, built once; tests call ``get_settings.cache_clear()``."""
    return Settings()
