"""Runs: ``POST /v1/run`` chooses a version (pin, label or rollout), runs it on the process's
engine and stores the run and its trace. ``service`` (use cases), ``repository`` (queries),
``runner`` (the engine and its compiled workflows), ``schemas``, ``routes`` (HTTP)."""

from control_plane.runs import service
from control_plane.runs.compiler import Compiler

__all__ = ["Compiler", "service"]
