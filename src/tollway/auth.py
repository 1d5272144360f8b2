"""Bearer key -> principal.  401 and 403 are decided here and nowhere else.

Keys are looked up by their SHA-256; the result is cached per process for a short TTL
(``server.key_cache_ttl_s``) so the hot path does not touch the database, while a
revocation still takes effect within that TTL.  When the database cannot be reached, a
key seen within ``server.key_cache_stale_s`` keeps being served from the cache (a short
outage does not stop traffic); any other key gets a 503 naming the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tollway.console.sessions import SessionStore
from tollway.errors import AuthenticationError, PermissionDenied, ServiceUnavailable
from tollway.ledger.keys import KeyInfo, hash_key, lookup_by_hash


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key (with its limits and policies), or the configured admin."""

    key: KeyInfo | None
    is_admin: bool = False

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None


def bearer_token(request: Request) -> str | None:
    """``Authorization: Bearer KEY``, or Anthropic's ``x-api-key``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    api_key = request.headers.get("x-api-key")
    return api_key.strip() if api_key else None


class KeyCache:
    """Per-process cache of key lookups (hits and misses), expiring after ``ttl_s``.

    An expired entry is kept ``stale_s`` longer, used only while the database is unreachable.
    """

    def __init__(self, engine: Engine, ttl_s: float, admin_key: str | None,
                 sessions: SessionStore | None = None, *, stale_s: float = 0.0) -> None:
        self._engine = engine
        # Console sessions stand in for the bearer key when a request has none (tollway.console).
        self.sessions = sessions
        self._ttl = ttl_s
        self._stale = stale_s
        self._admin_hash = hash_key(admin_key) if admin_key else None
        # digest -> (expires at, lookup result, when the database last answered for it)
        self._entries: dict[str, tuple[float, KeyInfo | None, float]] = {}

    def invalidate(self) -> None:
        self._entries.clear()

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
        digest = hash_key(token) if token else None
        if digest is None and self.sessions is not None:
            digest = await self.sessions.digest_for(request)
        if digest is None:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' (create one with 'tollway keys create')",
                code=401)
        return await self.authenticate_digest(digest)

    async def authenticate_digest(self, digest: str) -> Principal:
        """The principal of a key given by its SHA-256 (a bearer key's, or a console session's)."""
        if self._admin_hash is not None and digest == self._admin_hash:
            return Principal(key=None, is_admin=True)
        now = time.monotonic()
        entry = self._entries.get(digest)
        if entry is None or entry[0] < now:
            info = await self._refresh(digest, entry, now)
        else:
            info = entry[1]
        if info is None:
            raise AuthenticationError("invalid API key: check the key, or create one with 'tollway keys create'",
                                      code=401)
        if info.revoked_at is not None:
            raise AuthenticationError(f"API key {info.key_prefix}... has been revoked", code=401)
        if not info.active:
            raise AuthenticationError(f"API key {info.key_prefix}... has expired", code=401)
        return Principal(key=info, is_admin=info.is_admin)

    async def _refresh(self, digest: str, entry: tuple[float, KeyInfo | None, float] | None,
                       now: float) -> KeyInfo | None:
        try:
            info = await run_in_threadpool(self._lookup, digest)
        except SQLAlchemyError as exc:
            # Only a key this process found recently rides out the outage; the database is
            # retried for it at most once a second, so a hung database does not stall every request.
            if entry is not None and entry[1] is not None and now - (entry[2] + self._ttl) <= self._stale:
                self._entries[digest] = (now + 1.0, entry[1], entry[2])
                return entry[1]
            raise ServiceUnavailable("the ledger database is unreachable, so this API key cannot be checked; "
                                     "retry shortly", code=503, headers={"Retry-After": "1"}) from exc
        if len(self._entries) > 100_000:
            self._entries.clear()  # bound memory against floods of random keys
        self._entries[digest] = (now + self._ttl, info, now)
        return info

    def _lookup(self, digest: str) -> KeyInfo | None:
        with self._engine.connect() as conn:
            return lookup_by_hash(conn, digest)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDenied("this endpoint needs the admin key (config 'admin_key')", code=403)
