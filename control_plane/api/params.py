"""Path parameters shared by the resource routers, validated the same way everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

__all__ = ["ANONYMOUS", "LabelName", "VersionLabel", "WorkflowName"]

# The actor recorded in audit rows until API keys name who acted.
ANONYMOUS = "anonymous"
_NAME = r"^[A-Za-z][A-Za-z0-9_\-]*$"

WorkflowName = Annotated[str, Path(pattern=_NAME, max_length=128)]
VersionLabel = Annotated[str, Path(min_length=1, max_length=64)]
LabelName = Annotated[str, Path(pattern=_NAME, max_length=64)]
