"""What the audit service returns: pydantic models, never table rows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from control_plane.kit.time import UtcDatetime

__all__ = ["AuditEntryPublic"]


class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    actor: str = Field(description="the name of the API key that made the change")
    action: str = Field(description="e.g. version.create, label.promote, rollout.set, key.create")
    target_kind: str = Field(description="version | label | rollout | api_key")
    target: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    at: UtcDatetime
