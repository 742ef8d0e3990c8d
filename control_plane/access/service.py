"""API keys: create (the key is returned once), list, revoke, and authenticate a request's key.

A key is ``rg_<prefix>_<secret>``: ``prefix`` is 8 random hex digits, stored in clear to find
the row and to tell keys apart in listings; ``secret`` is 32 random bytes
(``secrets.token_urlsafe``). Only the SHA-256 of the whole key is stored. A fast hash is right
here, unlike for passwords: a password is guessable, so its hash must be slow to try guesses
against; a 256-bit random secret cannot be guessed, so a slow hash would only cost every request
time and add no protection. Hashes are compared with ``hmac.compare_digest`` (constant time).

The settings' admin key is a built-in admin named ``bootstrap-admin``, so a fresh install can
create its first keys; it is compared in constant time too. Functions never commit; key
creation and revocation write audit rows in the caller's unit of work (which also tells the
per-process cache of keys, see ``api.auth``, that they changed).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final

from sqlmodel import Session

from control_plane.access import repository as repo
from control_plane.access.schemas import KeyCreated, KeyPublic, Principal, Role
from control_plane.audit.service import record
from control_plane.errors import Conflict, NotFound, Unauthorized
from control_plane.kit.session import flush
from control_plane.kit.time import utcnow
from control_plane.store.tables import ApiKeyRow

__all__ = [
    "BOOTSTRAP_ADMIN",
    "StoredKey",
    "accept",
    "admin_principal",
    "authenticate",
    "create_key",
    "find_key",
    "hash_key",
    "is_well_formed",
    "list_keys",
    "revoke_key",
]

BOOTSTRAP_ADMIN: Final = "bootstrap-admin"
_SCHEME: Final = "rg_"
_PREFIX_LEN: Final = 8


def hash_key(key: str) -> str:
    """SHA-256 (hex) of the whole key: what is stored and compared."""
    return hashlib.sha256(key.encode()).hexdigest()


def _prefix_of(key: str) -> str | None:
    # `rg_` + 8 hex digits + `_` + secret; anything else is not one of our keys.
    end = len(_SCHEME) + _PREFIX_LEN
    if not key.startswith(_SCHEME) or len(key) <= end + 1 or key[end] != "_":
        return None
    return key[len(_SCHEME) : end]


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the store says of a key: whom it names, and whether it was revoked (what a cache
    of keys keeps; never the key or its hash)."""

    name: str
    role: Role
    revoked: bool


def admin_principal(*, key: str, admin_key: str) -> Principal | None:
    """``bootstrap-admin`` when ``key`` is the settings' admin key, else ``None``."""
    # Digests, not the raw strings: equal lengths, so the comparison leaks nothing, not even
    # the admin key's length.
    if admin_key and hmac.compare_digest(hash_key(key), _admin_digest(admin_key)):
        return Principal(name=BOOTSTRAP_ADMIN, role="admin")
    return None


@functools.lru_cache(maxsize=4)
def _admin_digest(admin_key: str) -> str:
    # The settings' key hardly ever changes: hash it once, not once per request.
    return hash_key(admin_key)


def is_well_formed(key: str) -> bool:
    """Whether ``key`` has the shape of our keys; any other string names nobody, no lookup
    needed."""
    return _prefix_of(key) is not None


def find_key(session: Session, *, key: str) -> StoredKey | None:
    """The stored key ``key`` is (revoked or not), or ``None`` when it is unknown."""
    prefix = _prefix_of(key)
    if prefix is None:
        return None
    digest = hash_key(key)
    for row in repo.keys_with_prefix(session, prefix):
        if hmac.compare_digest(row.key_hash, digest):
            role: Role = row.role  # type: ignore[assignment]  # the check constraint keeps it
            return StoredKey(name=row.name, role=role, revoked=row.revoked_at is not None)
    return None


def accept(stored: StoredKey | None) -> Principal:
    """The principal of a stored key, or ``Unauthorized`` (unknown or revoked)."""
    if stored is None:
        raise Unauthorized("unknown API key")
    if stored.revoked:
        raise Unauthorized(f"the API key {stored.name!r} was revoked")
    return Principal(name=stored.name, role=stored.role)


def authenticate(session: Session, *, key: str, admin_key: str) -> Principal:
    """The principal ``key`` names, or ``Unauthorized`` (unknown or revoked)."""
    admin = admin_principal(key=key, admin_key=admin_key)
    if admin is not None:
        return admin
    return accept(find_key(session, key=key))


def _public(row: ApiKeyRow) -> KeyPublic:
    return KeyPublic(
        name=row.name,
        role=row.role,  # type: ignore[arg-type]  # the check constraint keeps it a literal
        key_prefix=row.key_prefix,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        active=row.revoked_at is None,
    )


def _audit_view(row: ApiKeyRow) -> dict[str, object]:
    # What the audit log keeps of a key: never the hash.
    revoked = row.revoked_at.isoformat() if row.revoked_at is not None else None
    return {"role": row.role, "key_prefix": row.key_prefix, "revoked_at": revoked}


def create_key(session: Session, *, name: str, role: Role, actor: str) -> KeyCreated:
    """A new key for ``name``; the returned ``key`` is the only time anyone sees it."""
    if name == BOOTSTRAP_ADMIN:
        raise Conflict(f"{BOOTSTRAP_ADMIN!r} is the settings' admin key; choose another name")
    if repo.get_key(session, name) is not None:
        raise Conflict(
            f"an API key named {name!r} exists (names are not reused, also after revocation, "
            f"so the audit log names one key); choose another name"
        )
    prefix = secrets.token_hex(_PREFIX_LEN // 2)
    key = f"{_SCHEME}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        name=name, role=role, key_prefix=prefix, key_hash=hash_key(key), created_by=actor
    )
    session.add(row)
    record(
        session,
        actor=actor,
        action="key.create",
        target_kind="api_key",
        target=name,
        before=None,
        after=_audit_view(row),
    )
    flush(session, f"API key {name!r}")
    return KeyCreated(**_public(row).model_dump(), key=key)


def list_keys(session: Session) -> list[KeyPublic]:
    """Every key, revoked ones included, by name."""
    return [_public(row) for row in repo.list_keys(session)]


def revoke_key(session: Session, *, name: str, actor: str) -> KeyPublic:
    """Revoke ``name``: it fails from the next request on. Revoking twice changes nothing."""
    row = repo.get_key(session, name)
    if row is None:
        if name == BOOTSTRAP_ADMIN:
            raise Conflict(f"{BOOTSTRAP_ADMIN!r} is ROLLGRAPH_ADMIN_KEY; change or rotate it there")
        raise NotFound(f"no API key named {name!r}")
    if row.revoked_at is not None:
        return _public(row)
    before = _audit_view(row)
    row.revoked_at = utcnow()
    session.add(row)
    record(
        session,
        actor=actor,
        action="key.revoke",
        target_kind="api_key",
        target=name,
        before=before,
        after=_audit_view(row),
    )
    flush(session, f"API key {name!r}")
    return _public(row)
