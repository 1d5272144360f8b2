"""Console sessions: a random id in an HttpOnly, SameSite=Strict cookie; the rest stays here.

The cookie holds only a random session id.  The server keeps, per session, the SHA-256 of
the key that logged in (never the key) and a CSRF token; every request made with the
session re-authenticates that digest through the key cache, so a revoked or expired key
loses its console sessions within the key cache TTL.

Without ``redis`` configured, sessions live in memory, per process: right for one replica
(``tollway serve``, one worker); behind several workers or replicas a session opened on one
is unknown to the others.  With ``redis`` configured they live in Redis and every worker
and replica shares them (:class:`RedisSessionStore`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from tollway.errors import AuthenticationError, PermissionDenied, ServiceUnavailable

SESSION_COOKIE = "tollway_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in console: whose key (by digest), its CSRF token, when it ends."""

    key_digest: str
    csrf_token: str
    expires_at: float


class SessionStore:
    """Sessions by id, in this process: bounded in number (the oldest go first) and in age."""

    def __init__(self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    async def open(self, key_digest: str) -> tuple[str, Session]:
        """A new session for this key digest; returns (session id, session)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(key_digest, secrets.token_urlsafe(32), self._clock() + self._ttl)
        self._sessions[session_id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session_id, session

    async def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at < self._clock():
            del self._sessions[session_id]
            return None
        return session

    async def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    async def of_request(self, request: Request) -> Session | None:
        return await self.get(request.cookies.get(SESSION_COOKIE))

    async def digest_for(self, request: Request) -> str | None:
        """The key digest of the request's console session, or None when it has none.

        A state change (any method but GET/HEAD/OPTIONS) must also carry the session's
        CSRF token in ``X-CSRF-Token``: the cookie alone never authorises a write.
        """
        raw = request.cookies.get(SESSION_COOKIE)
        if raw is None:
            return None
        session = await self.get(raw)
        if session is None:
            raise AuthenticationError("the console session has expired or was logged out; log in again at /console",
                                      code=401)
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise PermissionDenied("missing or wrong X-CSRF-Token header for this console session", code=403)
        return session.key_digest


class RedisSessionStore(SessionStore):
    """Sessions in Redis (config ``redis``), so every worker and replica knows every session.

    Stored under ``prefix`` + SHA-256 of the session id (the id itself is never a Redis key),
    expiring with the session.  The blocking client runs in a worker thread.
    """

    def __init__(self, ttl_s: float, url: str, *, prefix: str = "tollway:session:", timeout_s: float = 2.0) -> None:
        super().__init__(ttl_s, 1)
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._prefix = prefix

    def _key(self, session_id: str) -> str:
        return self._prefix + hashlib.sha256(session_id.encode()).hexdigest()

    async def open(self, key_digest: str) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(key_digest, secrets.token_urlsafe(32), time.time() + self._ttl)
        value = orjson.dumps({"digest": session.key_digest, "csrf": session.csrf_token})
        await self._call(lambda: self._redis.set(self._key(session_id), value, ex=max(1, int(self._ttl))))
        return session_id, session

    async def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        key = self._key(session_id)
        found = await self._call(lambda: self._redis.get(key))
        if found is None:
            return None
        doc = orjson.loads(found)
        return Session(doc["digest"], doc["csrf"], 0.0)

    async def close(self, session_id: str | None) -> None:
        if session_id:
            key = self._key(session_id)
            await self._call(lambda: self._redis.delete(key))

    async def _call(self, work: Callable[[], Any]) -> Any:
        import redis

        try:
            return await asyncio.to_thread(work)
        except redis.RedisError as exc:
            raise ServiceUnavailable("console sessions are kept in Redis, which is not answering; "
                                     "check the 'redis' setting", code=503) from exc


def build_sessions(ttl_s: float, max_sessions: int, redis_url: str | None) -> SessionStore:
    """In Redis when ``redis`` is configured (shared by workers and replicas), else in memory."""
    if redis_url:
        return RedisSessionStore(ttl_s, redis_url)
    return SessionStore(ttl_s, max_sessions)
