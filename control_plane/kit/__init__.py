"""Domain-free helpers every package may use: UTC datetimes, the guarded flush."""
