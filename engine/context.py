"""What a running node kind can reach: providers (with concurrency limits), HTTP, its identity.

``Runtime`` is built once per ``Engine`` and shared by every run; ``NodeContext`` is the thin
per-step view a kind receives. Kinds never see the engine itself, so a kind cannot reach into
another node's state or the step cache.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from engine.errors import NodeError
from engine.http_policy import HttpAdvice, HttpPolicy, Target
from engine.limits import Limits
from engine.node_kinds import NodeKinds, NodeResult
from engine.observe import RunObserver
from engine.providers.base import ModelCall, Provider, ProviderResult, split_model

__all__ = ["NodeContext", "Runtime"]


class Runtime:
    """Shared, long-lived resources of an engine."""

    # Told about retries and step content when a host asks (``Engine.observe``); else None.
    observer: RunObserver | None = None

    def __init__(
        self,
        *,
        providers: Iterable[Provider],
        kinds: NodeKinds,
        http_allow_hosts: Iterable[str] = (),
        http_allow_networks: Iterable[str] = (),
        concurrency: Mapping[str, int] | None = None,
        http_client: httpx.AsyncClient | None = None,
        limits: Limits | None = None,
        http_advice: HttpAdvice | None = None,
    ) -> None:
        self.providers: dict[str, Provider] = {p.name: p for p in providers}
        self.kinds = kinds
        self.limits = limits or Limits()
        self.http_policy = HttpPolicy(http_allow_hosts, http_allow_networks, http_advice)
        self._limits: dict[str, int | None] = {}
        self.set_concurrency(concurrency or {})
        self._http = http_client
        self._own_http = http_client is None

    def set_concurrency(self, overrides: Mapping[str, int]) -> None:
        """Calls in flight per provider: ``overrides`` over each provider's own default.
        ``ValueError`` naming the provider for an unknown one or a limit below 1, so a typo
        in a setting fails the process at start rather than leaving a provider unbounded."""
        for name, limit in overrides.items():
            if name not in self.providers:
                known = ", ".join(sorted(self.providers)) or "none"
                raise ValueError(f"concurrency names provider {name!r}; known: {known}")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(
                    f"concurrency of provider {name!r} must be a whole number >= 1, got {limit!r}"
                )
        self._limits = {
            name: overrides.get(name, p.max_concurrency) for name, p in self.providers.items()
        }
        self._semaphores: dict[str, asyncio.Semaphore] = {}  # new limits: new semaphores

    def semaphore(self, provider: str) -> asyncio.Semaphore | None:
        limit = self._limits.get(provider)
        if not limit:
            return None
        sem = self._semaphores.get(provider)
        if sem is None:
            sem = self._semaphores[provider] = asyncio.Semaphore(limit)
        return sem

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0), follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None


class NodeContext:
    """The view of the run that one attempt of one step gets."""

    __slots__ = ("attempt", "node", "run_id", "runtime", "seed")

    def __init__(self, runtime: Runtime, run_id: str, node: str, seed: int, attempt: int) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.node = node
        self.seed = seed
        self.attempt = attempt

    def derive_seed(self, *parts: object) -> int:
        """A stable 63-bit seed from the run's seed, this node and ``parts``."""
        text = "\x1f".join(map(str, (self.seed, self.node, *parts)))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1

    async def call_model(self, task: str, model: str, inputs: Mapping[str, Any]) -> ProviderResult:
        """Call ``provider/model`` for ``task``, within that provider's concurrency limit."""
        try:
            provider_name, model_name = split_model(model)
        except ValueError as exc:
            raise NodeError(str(exc), code="bad_model") from None
        provider = self.runtime.providers.get(provider_name)
        if provider is None:
            known = ", ".join(sorted(self.runtime.providers)) or "none"
            raise NodeError(
                f"no provider {provider_name!r} is configured (configured: {known})",
                code="unknown_provider",
            )
        call = ModelCall(
            task=task,
            model=model_name,
            inputs=inputs,
            seed=self.seed,
            attempt=self.attempt,
            run_id=self.run_id,
            node=self.node,
        )
        sem = self.runtime.semaphore(provider_name)
        if sem is None:
            return await provider.invoke(call)
        async with sem:
            return await provider.invoke(call)

    @property
    def http(self) -> httpx.AsyncClient:
        return self.runtime.http

    async def http_target(self, url: str, timeout_s: float) -> Target:
        """Where a request to ``url`` may go: host and port on the engine's allow-list, every
        address the name resolves to allowed, pinned to one of them (``engine.http_policy``).
        Refusals are ``NodeError`` with code ``host_not_allowed`` (not retryable)."""
        return await self.runtime.http_policy.target(url, timeout_s)

    async def run_kind(self, name: str, params: dict[str, Any]) -> NodeResult:
        """Run another kind in place (``map`` uses this for each element)."""
        kind = self.runtime.kinds.get(name)
        if kind is None:
            raise NodeError(f"unknown node kind {name!r}", code="unknown_kind")
        result = await kind.fn(self, params)
        if isinstance(result, NodeResult):
            return result
        return NodeResult(outputs=result)
