"""Runs: ``POST /v1/run`` chooses a version (pin, label or rollout), runs it on the process's
engine and stores the run and its trace. ``execution`` (``Runs``: submit, sync, async, resume),
``queued`` (runs through the Redis queue), ``planning`` (which version), ``idempotency``,
``steps`` and ``remote_steps`` (the step cache), ``writer`` (group commit), ``compiler`` (the
engine and its compiled workflows), ``service`` (use cases), ``repository`` (queries),
``schemas``, ``deps``, ``routes`` (HTTP)."""

from control_plane.runs import service
from control_plane.runs.compiler import Compiler

__all__ = ["Compiler", "service"]
