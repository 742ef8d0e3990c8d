"""The rollgraph control plane: HTTP API, registry, router, store and the `rollgraph` CLI."""

__all__: list[str] = []
