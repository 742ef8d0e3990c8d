"""Who is calling (``Principal``), the roles, and what the key service returns.

Roles are ordered, each including the ones below it: ``viewer`` reads (workflows, versions,
labels, rollouts, runs); ``runner`` also runs workflows (``POST /v1/run``, outcomes); ``admin``
also changes things (apply, archive, labels, rollouts) and manages keys and reads the audit log.
A runner may read what a viewer reads because a pipeline that calls ``/v1/run`` usually needs
to see the versions and runs it is calling; nothing a runner can read is secret from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.kit.time import UtcDatetime

__all__ = [
    "KEY_NAME_PATTERN",
    "ROLE_RANK",
    "KeyCreate",
    "KeyCreated",
    "KeyIdentity",
    "KeyPublic",
    "Principal",
    "Role",
]

Role = Literal["admin", "runner", "viewer"]
ROLE_RANK: Final[dict[str, int]] = {"viewer": 0, "runner": 1, "admin": 2}
KEY_NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_\-]*$"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a request's key names: its ``name`` goes into audit rows as the actor."""

    name: str
    role: Role

    def has(self, role: Role) -> bool:
        """Whether this caller may do what ``role`` may (roles include the ones below)."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class KeyCreate(BaseModel):
    """A new API key: its name (unique for ever, also after revocation) and role."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=KEY_NAME_PATTERN, max_length=64)
    role: Role


class KeyIdentity(BaseModel):
    """Who a key is: its name (the actor in audit rows) and role."""

    model_config = ConfigDict(frozen=True)
    name: str
    role: Role


class KeyPublic(BaseModel):
    """A key's metadata; never the key or its hash."""

    model_config = ConfigDict(frozen=True)
    name: str
    role: Role
    key_prefix: str = Field(description="the key starts with `rg_<key_prefix>_`")
    created_at: UtcDatetime
    created_by: str
    revoked_at: UtcDatetime | None = None
    active: bool = Field(description="false once revoked")


class KeyCreated(KeyPublic):
    key: str = Field(description="the key itself: shown once, only the hash is stored")
