"""API keys: created, listed, revoked, looked up.  Only a SHA-256 of each key is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, select

from tollway.ledger import schema
from tollway.ledger.schema import utcnow

KEY_PREFIX = "sk-tw-"


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def new_plain_key() -> str:
    return KEY_PREFIX + secrets.token_hex(24)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as the gateway sees it (never the plain key)."""

    id: str
    name: str
    label: str | None
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    limit_nanousd: int | None
    limit_reset: str | None
    rpm: int | None
    tpm: int | None
    allowed_models: tuple[str, ...] | None
    policy: dict[str, Any]
    country: str | None
    usage_nanousd: int
    is_admin: bool

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > utcnow())

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "label": self.label or self.key_prefix,
            "key_prefix": self.key_prefix,
            "created_at": self.created_at.isoformat() + "Z",
            "revoked_at": self.revoked_at.isoformat() + "Z" if self.revoked_at else None,
            "expires_at": self.expires_at.isoformat() + "Z" if self.expires_at else None,
            "limit_nanousd": self.limit_nanousd, "limit_reset": self.limit_reset,
            "rpm": self.rpm, "tpm": self.tpm,
            "allowed_models": list(self.allowed_models) if self.allowed_models is not None else None,
            "policy": self.policy, "country": self.country,
            "usage_nanousd": self.usage_nanousd, "is_admin": self.is_admin,
        }


def _from_row(row: Row[Any]) -> KeyInfo:
    m = row._mapping
    allowed = orjson.loads(m["allowed_models"]) if m["allowed_models"] else None
    return KeyInfo(
        id=m["id"], name=m["name"], label=m["label"], key_prefix=m["key_prefix"],
        created_at=m["created_at"], revoked_at=m["revoked_at"], expires_at=m["expires_at"],
        limit_nanousd=m["limit_nanousd"], limit_reset=m["limit_reset"], rpm=m["rpm"], tpm=m["tpm"],
        allowed_models=tuple(allowed) if allowed is not None else None,
        policy=orjson.loads(m["policy"]) if m["policy"] else {},
        country=m["country"], usage_nanousd=int(m["usage_nanousd"] or 0), is_admin=bool(m["is_admin"]),
    )


def create_key(conn: Connection, *, name: str, label: str | None = None,
               limit_nanousd: int | None = None, limit_reset: str | None = None,
               rpm: int | None = None, tpm: int | None = None,
               allowed_models: list[str] | None = None, policy: dict[str, Any] | None = None,
               country: str | None = None, expires_at: datetime | None = None,
               is_admin: bool = False) -> tuple[KeyInfo, str]:
    """Create a key; returns its info and the plain key, which is never stored."""
    plain = new_plain_key()
    key_id = "key_" + secrets.token_hex(8)
    conn.execute(schema.keys.insert().values(
        id=key_id, name=name, label=label, key_hash=hash_key(plain),
        key_prefix=plain[: len(KEY_PREFIX) + 6], created_at=utcnow(), expires_at=expires_at,
        limit_nanousd=limit_nanousd, limit_reset=limit_reset, rpm=rpm, tpm=tpm,
        allowed_models=orjson.dumps(allowed_models).decode() if allowed_models is not None else None,
        policy=orjson.dumps(policy).decode() if policy else None,
        country=country.upper() if country else None, usage_nanousd=0, is_admin=is_admin,
    ))
    info = get_key(conn, key_id)
    assert info is not None
    return info, plain


def get_key(conn: Connection, key_id: str) -> KeyInfo | None:
    row = conn.execute(select(schema.keys).where(schema.keys.c.id == key_id)).first()
    return _from_row(row) if row is not None else None


def find_key(conn: Connection, ref: str) -> KeyInfo | None:
    """By id, by unique name, or by the plain key itself."""
    row = conn.execute(select(schema.keys).where(schema.keys.c.id == ref)).first()
    if row is None and ref.startswith(KEY_PREFIX):
        row = conn.execute(select(schema.keys).where(schema.keys.c.key_hash == hash_key(ref))).first()
    if row is None:
        rows = conn.execute(select(schema.keys).where(schema.keys.c.name == ref)).fetchall()
        row = rows[0] if len(rows) == 1 else None
    return _from_row(row) if row is not None else None


def lookup_by_hash(conn: Connection, key_hash: str) -> KeyInfo | None:
    row = conn.execute(select(schema.keys).where(schema.keys.c.key_hash == key_hash)).first()
    return _from_row(row) if row is not None else None


def list_keys(conn: Connection, *, include_revoked: bool = False) -> list[KeyInfo]:
    query = select(schema.keys).order_by(schema.keys.c.created_at)
    if not include_revoked:
        query = query.where(schema.keys.c.revoked_at.is_(None))
    return [_from_row(r) for r in conn.execute(query)]


def revoke_key(conn: Connection, key_id: str) -> bool:
    result = conn.execute(schema.keys.update().where(
        (schema.keys.c.id == key_id) & schema.keys.c.revoked_at.is_(None)).values(revoked_at=utcnow()))
    return bool(result.rowcount)


def update_key(conn: Connection, key_id: str, **values: Any) -> KeyInfo | None:
    """Change a key's limits, label, policy or country."""
    if "allowed_models" in values and values["allowed_models"] is not None:
        values["allowed_models"] = orjson.dumps(values["allowed_models"]).decode()
    if "policy" in values and values["policy"] is not None:
        values["policy"] = orjson.dumps(values["policy"]).decode()
    if values.get("country"):
        values["country"] = values["country"].upper()
    if values:
        conn.execute(schema.keys.update().where(schema.keys.c.id == key_id).values(**values))
    return get_key(conn, key_id)
