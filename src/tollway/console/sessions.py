"""Console sessions: a random id in an HttpOnly, SameSite=Strict cookie; the rest stays here.

The cookie holds only a random session id.  The server keeps, per session, the SHA-256 of
the key that logged in (never the key) and a CSRF token; every request made with the
session re-authenticates that digest through the key cache, so a revoked or expired key
loses its console sessions within the key cache TTL.

Sessions live in memory, per process: right for one replica (``tollway serve``).  Behind
several workers or replicas a session opened on one is unknown to the others, so put the
console behind a sticky load balancer or a single worker.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request

from tollway.errors import AuthenticationError, PermissionDenied

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
    """Sessions by id, bounded in number (the oldest are dropped first) and in age."""

    def __init__(self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, key_digest: str) -> tuple[str, Session]:
        """A new session for this key digest; returns (session id, session)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(key_digest, secrets.token_urlsafe(32), self._clock() + self._ttl)
        self._sessions[session_id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at < self._clock():
            del self._sessions[session_id]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def of_request(self, request: Request) -> Session | None:
        return self.get(request.cookies.get(SESSION_COOKIE))

    def digest_for(self, request: Request) -> str | None:
        """The key digest of the request's console session, or None when it has none.

        A state change (any method but GET/HEAD/OPTIONS) must also carry the session's
        CSRF token in ``X-CSRF-Token``: the cookie alone never authorises a write.
        """
        raw = request.cookies.get(SESSION_COOKIE)
        if raw is None:
            return None
        session = self.get(raw)
        if session is None:
            raise AuthenticationError("the console session has expired or was logged out; log in again at /console",
                                      code=401)
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                raise PermissionDenied("missing or wrong X-CSRF-Token header for this console session", code=403)
        return session.key_digest
