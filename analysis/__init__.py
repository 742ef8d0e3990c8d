"""Statistics for experiments: pure functions over sufficient statistics (built in a later issue)."""

__all__: list[str] = []
