"""Process settings, read once from the environment (``ROLLGRAPH_*``, plus plain ``DATABASE_URL``).

The defaults start a development server with no configuration at all: a SQLite file under
``var/`` and a placeholder admin key. Outside ``dev`` the placeholder (or any weak key) is refused
at start-up, because a forgotten default key is a public admin API; a server bound to anything
but loopback refuses the placeholder whatever the env (``rollgraph serve`` checks the address).

A key's strength is estimated, not looked up in a word list: ``admin_key_problem`` counts the
characters that the ones before them do not predict (a repeat, an alphabet, digit or keyboard
sequence, a block seen earlier) and multiplies them by log2 of the alphabet of the character
classes used; at least ``MIN_ADMIN_KEY_BITS`` are required.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
from pathlib import Path
from typing import Final, Literal

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.http_policy import parse_entry, parse_network

__all__ = [
    "DEV_ADMIN_KEY",
    "KEY_RECIPE",
    "MIN_ADMIN_KEY_BITS",
    "Settings",
    "admin_key_problem",
    "bind_problem",
    "estimate_key_bits",
    "get_settings",
    "is_loopback",
    "provider_limits",
    "settings_problem",
    "split_list",
]

DEV_ADMIN_KEY: Final = "dev-admin-key-not-for-production"
# 128 bits: beyond any online or offline guessing; `secrets.token_urlsafe(32)` estimates ~260.
MIN_ADMIN_KEY_BITS: Final = 128
KEY_RECIPE: Final = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# Sequences a person types: the alphabet, digits (wrapping 9 -> 0), keyboard rows run together.
_SEQUENCES: Final = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiopasdfghjklzxcvbnm",
    "azertyuiopqsdfghjklmwxcvbn",
    "qwertzuiopasdfghjklyxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
)
_ADJACENT: Final = frozenset(
    pair
    for sequence in _SEQUENCES
    for a, b in itertools.pairwise(sequence)
    for pair in ((a, b), (b, a))
)
_PUNCTUATION_CLASS: Final = 33  # printable ASCII that is neither a letter nor a digit


def estimate_key_bits(key: str) -> float:
    """Estimated entropy of ``key`` in bits: the characters the ones before do not predict,
    times log2 of the alphabet of the classes used (a-z 26, A-Z 26, 0-9 10, others 33; any
    non-ASCII character adds 100)."""
    alphabet = 0
    alphabet += 26 if any("a" <= c <= "z" for c in key) else 0
    alphabet += 26 if any("A" <= c <= "Z" for c in key) else 0
    alphabet += 10 if any("0" <= c <= "9" for c in key) else 0
    alphabet += _PUNCTUATION_CLASS if any(c.isascii() and not c.isalnum() for c in key) else 0
    alphabet += 100 if any(not c.isascii() for c in key) else 0
    if alphabet <= 1:
        return 0.0
    folded = key.lower()  # sequences and keyboard rows regardless of case
    surprising = 0
    for i, c in enumerate(key):
        if i >= 2:
            a, b, f = folded[i - 2], folded[i - 1], folded[i]
            if c == key[i - 1] == key[i - 2] or ((a, b) in _ADJACENT and (b, f) in _ADJACENT):
                continue  # the third of a repeat, or of a run along a sequence
        if i >= 3 and key[i - 3 : i + 1] in key[:i]:
            continue  # four characters seen earlier: a repeated block
        surprising += 1
    return surprising * math.log2(alphabet)


def admin_key_problem(key: str) -> str | None:
    """Why ``key`` is too weak to be an admin key, in one line, or ``None`` when it is strong."""
    how = f"set a random one, e.g. `{KEY_RECIPE}`"
    if DEV_ADMIN_KEY in key.lower():
        return f"ROLLGRAPH_ADMIN_KEY is the published development key; {how}"
    bits = estimate_key_bits(key)
    if bits < MIN_ADMIN_KEY_BITS:
        return (
            f"ROLLGRAPH_ADMIN_KEY is too weak: about {bits:.0f} bits estimated (characters not "
            f"predicted by a repeat, sequence or keyboard row x log2 of the character classes "
            f"used), at least {MIN_ADMIN_KEY_BITS} needed; {how}"
        )
    return None


def is_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


def bind_problem(settings: Settings, host: str) -> str | None:
    """Why a server with ``settings`` must not listen on ``host``, in one line, or ``None``."""
    if is_loopback(host) or DEV_ADMIN_KEY not in settings.admin_key.lower():
        return None
    return (
        f"refusing to listen on {host} with the development admin key: set ROLLGRAPH_ADMIN_KEY "
        f"to a random key (e.g. `{KEY_RECIPE}`), or bind to 127.0.0.1"
    )


def settings_problem(exc: ValidationError) -> str:
    """A settings validation error as one line (what a command prints instead of a traceback)."""
    parts = []
    for error in exc.errors():
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"ROLLGRAPH_{where.upper()}: {message}" if where else message)
    return "; ".join(parts) or str(exc).replace("\n", " ")


def split_list(value: str) -> list[str]:
    """A comma-separated setting as its entries, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def provider_limits(value: str) -> dict[str, int]:
    """``sim=64,openai=8`` as a mapping; ``ValueError`` naming the entry that is not
    ``provider=N`` with N a whole number of at least 1."""
    limits: dict[str, int] = {}
    for entry in split_list(value):
        name, sep, number = entry.partition("=")
        name = name.strip()
        try:
            limit = int(number.strip()) if sep else 0
        except ValueError:
            limit = 0
        if not name or limit < 1 or limit > 100_000:
            raise ValueError(
                f"entry {entry!r} is not provider=N with N a whole number from 1 to 100000 "
                "(e.g. sim=64,openai=8)"
            )
        limits[name] = limit
    return limits


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
    # Retention (runs.retention): ended runs older than this many days are deleted by the sweep
    # with their traces, steps, outcomes and idempotency keys, in transactions of at most
    # run_retention_batch runs; experiment statistics, decisions and audit rows stay. Unset:
    # runs are kept forever.
    run_retention_days: float | None = Field(default=None, gt=0, le=36_500)
    run_retention_batch: int = Field(default=1_000, ge=1, le=100_000)
    # An Idempotency-Key's claim is a lease renewed every third of this while its run executes:
    # a retry takes over the claim of a request whose process died once this has passed.
    idempotency_lease_s: float = Field(default=10.0, ge=0.3, le=3600)
    shutdown_grace_s: float = Field(default=10.0, ge=0)  # async runs left to finish on stop
    # How often a stored running run (async, queued, resumed) writes its step states, when
    # one changed (runs.progress): the longest `GET /v1/runs/{id}` lags behind; 0: never.
    progress_interval_s: float = Field(default=0.5, ge=0, le=3600)
    # GET /v1/runs/{id}/events (runs.stream): how often a stream re-reads its run when no
    # notification woke it (without Redis; with Redis subscribed, the longer fallback), the
    # comment sent on a quiet stream, how long a stream lasts before the client reconnects
    # with Last-Event-ID (told `retry:` ms), and the streams one process serves at once.
    run_events_poll_s: float = Field(default=0.25, gt=0, le=60)
    run_events_redis_poll_s: float = Field(default=2.0, gt=0, le=60)
    run_events_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    run_events_max_s: float = Field(default=300.0, gt=0, le=86_400)
    run_events_retry_ms: int = Field(default=1000, ge=0, le=60_000)
    run_events_max_streams: int = Field(default=200, ge=1, le=100_000)
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
    # Back-pressure (queue.pressure): async submissions get 429 `queue_full` while this many runs
    # wait for a worker, or while the oldest has waited this long; 0 turns a limit off.
    queue_max_depth: int = Field(default=10_000, ge=0)
    # Shadow traffic (runs.shadow.dispatch): mirrored requests wait in a queue of this many per
    # process (past it they are dropped, counted), taken by this many workers.
    shadow_queue_size: int = Field(default=100, ge=1, le=100_000)
    shadow_workers: int = Field(default=2, ge=1, le=64)
    # Online evaluators (evaluations.dispatch): succeeded runs wait in a queue of this many
    # per process to be scored (past it they are not evaluated, counted), by this many workers.
    evaluation_queue_size: int = Field(default=1000, ge=1, le=100_000)
    evaluation_workers: int = Field(default=2, ge=1, le=64)
    # A succeeded run still not evaluated this long after it was stored (its process stopped)
    # is evaluated by the next sweep of any process.
    evaluation_retry_s: float = Field(default=300.0, ge=0)
    queue_max_wait_s: float = Field(default=120.0, ge=0)
    # Store connections per process (PostgreSQL; SQLite serialises writers anyway). A request
    # that finds them all busy for db_pool_timeout_s gets a 503 with Retry-After
    # instead of queueing behind a stalled store for half a minute.
    db_pool_size: int = Field(default=15, ge=1, le=1000)
    db_pool_timeout_s: float = Field(default=5.0, gt=0, le=300)
    # How long a starting server or worker waits for a store that is away before it gives up
    # (store.startup); 0: it fails at once, as a misconfigured URL should under a supervisor.
    store_startup_wait_s: float = Field(default=120.0, ge=0, le=3600)
    # Admission control (store.db.UnitGate): request units in flight per process beyond the
    # pool's connections that may wait for one; past pool size + this, a request gets 503
    # `store_busy` at once. Unset: three times the pool's connections. With as many as the pool
    # (30 in flight), a 10-minute soak of 200 clients on two busy cores shed 61 of 105,491
    # requests in bursts where the CPU, not the store, was short; a unit holds a connection for
    # milliseconds, and one that waits longer than db_pool_timeout_s still gets a 503.
    db_max_waiting: int | None = Field(default=None, ge=0, le=100_000)
    # Store lookups of unknown API keys a client address may cause per second before it gets
    # 429 (access.failures): guessing keys costs the store nothing past this.
    key_failures_per_s: float = Field(default=10.0, gt=0)
    # Bounds on work (engine.limits has why each exists). A definition over the graph bounds is
    # a 422 when applied; a run over the others fails with a step error `too_large`.
    # 1,000 nodes / 10,000 edges: fifty times the largest example; 1,000 nodes compile in
    # ~0.35 s (a 10,000-node definition is refused after reading its first 1,001).
    max_nodes: int = Field(default=1_000, ge=1, le=100_000)
    max_edges: int = Field(default=10_000, ge=1, le=1_000_000)
    # 10,000 elements of a template: ~1.3 s and ~14 MB of one process here (400,000: 41 s and
    # 610 MB on the same machine).
    max_map_items: int = Field(default=10_000, ge=1)
    # 1 MiB: the request body limit's size; a text a template builds is a prompt or a message.
    max_template_bytes: int = Field(default=1024 * 1024, ge=1)
    # 8 MiB: what an http.json call reads, a map collects and a run returns (outputs are
    # text and media references, never media bytes).
    max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    # Where http.json may connect, comma-separated host:port (a bare host: its scheme's default
    # port; host:* every port). Empty: nowhere. Private, loopback and link-local addresses are
    # refused unless in http_allow_networks (CIDRs, comma-separated) or named as an address.
    http_allow_hosts: str = ""
    http_allow_networks: str = ""
    # Model calls in flight per provider and process, comma-separated provider=N (sim=64,
    # openai=8); a provider not named keeps its own default. An unknown provider stops the
    # process at start, naming the known ones.
    provider_concurrency: str = ""
    # The simulated provider's latency factor (1: realistic, 0: no sleeping). Unset: whatever
    # the process's engine was built with (1 for `rollgraph serve` and the worker).
    sim_time_scale: float | None = Field(default=None, ge=0, le=1_000)
    # OpenTelemetry (control_plane.telemetry; export itself is set by the standard OTEL_*
    # variables): record prompts, parameters and outputs on spans. Off: they are user content.
    otel_capture_content: bool = False

    @field_validator("http_allow_hosts", "http_allow_networks")
    @classmethod
    def _check_http_entries(cls, value: str, info: ValidationInfo) -> str:
        parse = parse_entry if info.field_name == "http_allow_hosts" else parse_network
        for entry in split_list(value):
            parse(entry)  # a ValueError names the entry
        return value

    @field_validator("provider_concurrency")
    @classmethod
    def _check_concurrency(cls, value: str) -> str:
        provider_limits(value)  # a ValueError names the entry
        return value

    @property
    def db_admission_limit(self) -> int:
        """Request units of work in flight per process before 503 ``store_busy``."""
        waiting = 3 * self.db_pool_size if self.db_max_waiting is None else self.db_max_waiting
        return self.db_pool_size + waiting

    @model_validator(mode="after")
    def _refuse_weak_admin_key(self) -> Settings:
        if self.env == "dev":
            return self
        problem = admin_key_problem(self.admin_key)
        if problem is not None:
            raise ValueError(f"{problem} (env={self.env!r})")
        return self


@functools.cache
def get_settings() -> Settings:
    """The process's settings, built once; tests call ``get_settings.cache_clear()``."""
    return Settings()
