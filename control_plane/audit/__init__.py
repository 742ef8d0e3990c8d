"""The audit log: who changed what, with the state before and after, and when. ``service``
(write a row, read rows), ``repository`` (queries), ``schemas``, ``routes`` (HTTP, admin only)."""

from control_plane.audit import service

__all__ = ["service"]
