"""The ``rollgraph`` command: one module per command group (``main`` parses and dispatches)."""

from control_plane.cli.main import main

__all__ = ["main"]
