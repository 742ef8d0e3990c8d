"""Rollouts: a label's traffic split between its version (the baseline) and one or more
candidates, by sticky hashing of the user id. ``service`` (use cases), ``repository``
(queries), ``schemas``, ``routes`` (HTTP)."""

from control_plane.rollouts import service

__all__ = ["service"]
