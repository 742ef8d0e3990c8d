"""The workflow registry domain: ``service`` (use cases), ``repository`` (queries), ``schemas``
(what callers get back) and ``diff`` (structured and textual version diffs)."""

from control_plane.workflows import service
from control_plane.workflows.diff import diff_versions

__all__ = ["diff_versions", "service"]
