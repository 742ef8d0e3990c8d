"""Write and read the audit log. Every change to a workflow, version, label, rollout or API key
calls ``record`` in the same unit of work as the change itself, so a change and its audit row
are committed (or rolled back) together, and with them the increment of the registry's
generation that tells every process's ``RegistryCache`` its entries are stale. Functions never
commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from control_plane.audit import repository as repo
from control_plane.audit.schemas import AuditEntryPublic
from control_plane.kit.time import as_utc
from control_plane.store.generation import bump_generation
from control_plane.store.tables import AuditRow

__all__ = ["list_entries", "record"]


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_kind: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Add one audit row: ``actor`` (a key's name) did ``action`` to ``target``, and increment
    the registry's generation in the same transaction."""
    session.add(
        AuditRow(
            actor=actor,
            action=action,
            target_kind=target_kind,
            target=target,
            before=before,
            after=after,
        )
    )
    # Here, the one writer every registry change calls, so that no change can forget it.
    bump_generation(session)


def list_entries(
    session: Session,
    *,
    target_kind: str | None = None,
    target: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEntryPublic]:
    """Audit rows matching every given filter, newest first."""
    rows = repo.list_entries(
        session,
        target_kind=target_kind,
        target=target,
        actor=actor,
        since=as_utc(since) if since is not None else None,
        limit=limit,
    )
    return [_public(row) for row in rows]


def _public(row: AuditRow) -> AuditEntryPublic:
    assert row.id is not None  # rows read back from the store have their id
    return AuditEntryPublic(
        id=row.id,
        actor=row.actor,
        action=row.action,
        target_kind=row.target_kind,
        target=row.target,
        before=row.before,
        after=row.after,
        at=row.at,
    )
