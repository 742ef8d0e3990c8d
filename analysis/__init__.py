"""Statistics for experiments: pure functions over sufficient statistics (a later issue)."""

__all__: list[str] = []
