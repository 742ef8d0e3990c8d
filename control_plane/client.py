"""A small Python client of the rollgraph API; the CLI is built on it.

```python
from control_plane.client import Client

with Client("http://127.0.0.1:8000") as rg:
    rg.apply(open("examples/product-video/v3.3.yaml").read())
    rg.promote("product-video", "v3.3", label="prod")
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Literal

import httpx

__all__ = ["ApiError", "Client"]


class ApiError(Exception):
    """An error answer of the API: its status, stable code, message and any details."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class Client:
    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.is_success:
            return response.json()
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(response.status_code, "http_error", response.text[:200], {}) from None
        details = {k: v for k, v in error.items() if k not in {"code", "message"}}
        raise ApiError(response.status_code, error["code"], error["message"], details)

    def apply(self, source: str, *, version: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"source": source}
        if version:
            body["version"] = version
        result: dict[str, Any] = self._call("POST", "/v1/workflows", json=body)
        return result

    def workflows(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/workflows")
        return result

    def versions(self, workflow: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/v1/workflows/{workflow}/versions")
        return result

    def diff(self, workflow: str, a: str, b: str) -> dict[str, Any]:
        params = {"a": a, "b": b}
        result: dict[str, Any] = self._call("GET", f"/v1/workflows/{workflow}/diff", params=params)
        return result

    def promote(self, workflow: str, version: str, *, label: str = "prod") -> dict[str, Any]:
        path = f"/v1/workflows/{workflow}/labels/{label}"
        result: dict[str, Any] = self._call("PUT", path, json={"version": version})
        return result

    def rollback(self, workflow: str, *, label: str = "prod") -> dict[str, Any]:
        path = f"/v1/workflows/{workflow}/labels/{label}/rollback"
        result: dict[str, Any] = self._call("POST", path)
        return result

    def labels(self, workflow: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/v1/workflows/{workflow}/labels")
        return result

    def run(
        self,
        workflow: str,
        inputs: dict[str, Any] | None = None,
        *,
        user_id: str | None = None,
        version: str | None = None,
        label: str | None = None,
        mode: Literal["sync", "async"] = "sync",
    ) -> dict[str, Any]:
        """Run a workflow server-side; a failed node is a result with ``status: failed``.
        ``mode="async"`` returns at once with the run ``running``; read it with ``get_run``."""
        body: dict[str, Any] = {"workflow": workflow, "input": inputs or {}, "mode": mode}
        for key, value in (("user_id", user_id), ("version", version), ("label", label)):
            if value is not None:
                body[key] = value
        result: dict[str, Any] = self._call("POST", "/v1/run", json=body)
        return result

    def resume(self, run_id: str, *, mode: Literal["sync", "async"] = "sync") -> dict[str, Any]:
        """Resume a failed run from its completed steps (same run id, version and input)."""
        result: dict[str, Any] = self._call(
            "POST", f"/v1/runs/{run_id}/resume", json={"mode": mode}
        )
        return result

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A run with its trace."""
        result: dict[str, Any] = self._call("GET", f"/v1/runs/{run_id}")
        return result

    def rollout_set(
        self, workflow: str, version: str, percent: float, *, label: str = "prod"
    ) -> dict[str, Any]:
        """Make ``version`` the label's only candidate at ``percent`` (0 ends the rollout)."""
        path = f"/v1/workflows/{workflow}/rollouts/{label}"
        body = {"version": version, "percent": percent}
        result: dict[str, Any] = self._call("PUT", path, json=body)
        return result

    def rollout_set_many(
        self,
        workflow: str,
        candidates: Mapping[str, float] | Iterable[tuple[str, float]],
        *,
        label: str = "prod",
    ) -> dict[str, Any]:
        """Replace the label's candidates, e.g. ``{"v3.3": 10, "v3.4": 5}`` (percents, in
        order, summing to at most 100); an empty one ends the rollout."""
        pairs = candidates.items() if isinstance(candidates, Mapping) else candidates
        path = f"/v1/workflows/{workflow}/rollouts/{label}"
        body = {"candidates": [{"version": v, "percent": p} for v, p in pairs]}
        result: dict[str, Any] = self._call("PUT", path, json=body)
        return result

    def rollout_status(self, workflow: str, *, label: str = "prod") -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/workflows/{workflow}/rollouts/{label}")
        return result

    def create_key(self, name: str, *, role: str) -> dict[str, Any]:
        """A new API key (admin); the answer's ``key`` is the only time the key is shown."""
        result: dict[str, Any] = self._call("POST", "/v1/keys", json={"name": name, "role": role})
        return result

    def keys(self) -> list[dict[str, Any]]:
        """Every key's metadata (admin); never a key or its hash."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/keys")
        return result

    def revoke_key(self, name: str) -> dict[str, Any]:
        """Revoke a key (admin): requests with it get 401 from now on."""
        result: dict[str, Any] = self._call("DELETE", f"/v1/keys/{name}")
        return result

    def experiment_start(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start an experiment (admin): ``body`` as ``POST /v1/experiments`` takes it."""
        result: dict[str, Any] = self._call("POST", "/v1/experiments", json=body)
        return result

    def experiments(
        self, *, workflow: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("workflow", workflow), ("status", status)) if v}
        result: list[dict[str, Any]] = self._call("GET", "/v1/experiments", params=params)
        return result

    def experiment_results(self, experiment_id: int) -> dict[str, Any]:
        """Per arm and metric statistics and the decision with its reasons."""
        path = f"/v1/experiments/{experiment_id}/results"
        result: dict[str, Any] = self._call("GET", path)
        return result

    def experiment_decisions(self, experiment_id: int) -> list[dict[str, Any]]:
        path = f"/v1/experiments/{experiment_id}/decisions"
        result: list[dict[str, Any]] = self._call("GET", path)
        return result

    def experiment_stop(self, experiment_id: int) -> dict[str, Any]:
        path = f"/v1/experiments/{experiment_id}/stop"
        result: dict[str, Any] = self._call("POST", path)
        return result

    def experiment_resume(self, experiment_id: int) -> dict[str, Any]:
        """Resume a halted experiment (admin)."""
        path = f"/v1/experiments/{experiment_id}/resume"
        result: dict[str, Any] = self._call("POST", path)
        return result

    def outcome(self, run_id: str, metrics: dict[str, bool | float]) -> dict[str, Any]:
        """Record what happened after a run, once per metric (runner)."""
        result: dict[str, Any] = self._call("POST", f"/v1/runs/{run_id}/outcome", json=metrics)
        return result

    def audit(
        self,
        *,
        target_kind: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Audit rows matching every given filter, newest first (admin)."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (
            ("target_kind", target_kind),
            ("target", target),
            ("actor", actor),
            ("since", since),
        ):
            if value is not None:
                params[key] = value
        result: list[dict[str, Any]] = self._call("GET", "/v1/audit", params=params)
        return result
