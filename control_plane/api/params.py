"""Path parameters shared by the resource routers, validated the same way everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from control_plane.kit.storable import Storable

__all__ = ["KeyName", "LabelName", "VersionLabel", "WorkflowName"]

_NAME = r"^[A-Za-z][A-Za-z0-9_\-]*$"

WorkflowName = Annotated[str, Path(pattern=_NAME, max_length=128)]
# Free text but for what the store cannot hold (NUL, lone surrogates).
VersionLabel = Annotated[str, Path(min_length=1, max_length=64), Storable]
LabelName = Annotated[str, Path(pattern=_NAME, max_length=64)]
KeyName = Annotated[str, Path(pattern=_NAME, max_length=64)]
