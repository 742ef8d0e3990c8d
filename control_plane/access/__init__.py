"""Access control: API keys with roles, stored hashed. ``service`` (create, list, revoke,
authenticate), ``repository`` (queries), ``schemas`` (``Principal``, roles, what callers get
back), ``routes`` (HTTP, admin only). The FastAPI dependency is ``control_plane.access.deps``."""

from control_plane.access import service
from control_plane.access.schemas import Principal, Role

__all__ = ["Principal", "Role", "service"]
