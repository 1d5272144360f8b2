"""The console's pages: server-rendered templates whose scripts fetch tollway's JSON APIs.

Mounted at ``/console`` as its own small Starlette app, so its middleware (gzip, the
security headers) never runs on the chat path.  Page handlers only decide who is looking
and render a template; the data comes from the JSON APIs, called by the page's script
with the session cookie (and, for changes, the session's CSRF token in a header).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollway.api.common import read_body
from tollway.auth import Principal
from tollway.console.data import page_rankings_endpoint
from tollway.console.sessions import SESSION_COOKIE, Session, SessionStore
from tollway.errors import TollwayError
from tollway.gateway import Gateway
from tollway.ledger.keys import hash_key

LOGIN_CSRF_COOKIE = "tollway_login_csrf"
PAGES = ("rankings", "models", "activity", "keys", "providers")
ADMIN_PAGES = frozenset({"keys"})

# No inline script anywhere: every script is a file from this origin.  Styles may be
# inline because the chart library positions its tooltips with style attributes.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the CSP and friends to every console response (pages and static files)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class ConsolePages:
    """The page handlers, bound to one gateway (its key cache and session store)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings.console
        sessions = gateway.keys.sessions
        assert sessions is not None, "the gateway's key cache has no session store"
        self.sessions: SessionStore = sessions
        self.templates = Environment(loader=PackageLoader("tollway.console", "templates"),
                                     autoescape=select_autoescape(default=True), auto_reload=False)

    def _render(self, name: str, status: int = 200, **context: Any) -> Response:
        html = self.templates.get_template(name).render(**context)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-store"})

    async def _viewer(self, request: Request) -> tuple[Session, Principal] | None:
        """The logged-in session and its key, or None (no session, expired, key revoked)."""
        session = await self.sessions.of_request(request)
        if session is None:
            return None
        try:
            principal = await self.gateway.keys.authenticate_digest(session.key_digest)
        except TollwayError:
            await self.sessions.close(request.cookies.get(SESSION_COOKIE))
            return None
        return session, principal

    async def home(self, request: Request) -> Response:
        if await self._viewer(request) is not None:
            return RedirectResponse("/console/activity", status_code=303)
        if self.settings.public_rankings:
            return RedirectResponse("/console/rankings", status_code=303)
        return RedirectResponse("/console/login", status_code=303)

    async def page(self, request: Request) -> Response:
        name = request.path_params["page"]
        if name not in PAGES:
            return self._render("error.html", status=404, message=f"no console page {name!r}", viewer=None,
                                page=None)
        viewer = await self._viewer(request)
        if viewer is None:
            if name == "rankings" and self.settings.public_rankings:
                return self._render("rankings.html", page=name, viewer=None, csrf="", public=True)
            return RedirectResponse(f"/console/login?next=/console/{name}", status_code=303)
        session, principal = viewer
        context = {"page": name, "viewer": _describe(principal), "csrf": session.csrf_token, "public": False}
        if name in ADMIN_PAGES and not principal.is_admin:
            return self._render("error.html", status=403, message="the keys page needs an admin key", **context)
        return self._render(f"{name}.html", **context)

    async def login_form(self, request: Request, *, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        response = self._render("login.html", status=status, page="login", viewer=None, csrf=token, error=error,
                                next=_safe_next(request.query_params.get("next")),
                                public_rankings=self.settings.public_rankings)
        response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/console",
                            secure=request.url.scheme == "https")
        return response

    async def login(self, request: Request) -> Response:
        form = _form(await read_body(request, 16 * 1024))
        sent, expected = form.get("csrf", ""), request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return await self.login_form(request, error="the form expired; log in again", status=403)
        key = form.get("key", "").strip()
        if not key:
            return await self.login_form(request, error="enter a tollway key", status=400)
        digest = hash_key(key)
        try:
            await self.gateway.keys.authenticate_digest(digest)
        except TollwayError as exc:
            return await self.login_form(request, error=exc.message, status=401)
        session_id, _ = await self.sessions.open(digest)
        response = RedirectResponse(_safe_next(form.get("next")) or "/console/activity", status_code=303)
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https", max_age=int(self.settings.session_ttl_s))
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
        return response

    async def logout(self, request: Request) -> Response:
        form = _form(await read_body(request, 16 * 1024))
        session = await self.sessions.of_request(request)
        if session is not None and hmac.compare_digest(form.get("csrf", "").encode(),
                                                       session.csrf_token.encode()):
            await self.sessions.close(request.cookies.get(SESSION_COOKIE))
        elif session is not None:
            return self._render("error.html", status=403, message="log-out needs the page's CSRF token",
                                page=None, viewer=None)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _describe(principal: Principal) -> dict[str, Any]:
    key = principal.key
    return {"is_admin": principal.is_admin, "key_id": principal.key_id,
            "name": key.name if key is not None else "admin (config admin_key)",
            "prefix": key.key_prefix if key is not None else None}


def _form(raw: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, first value of each field."""
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


def _safe_next(value: str | None) -> str | None:
    """Only a console path: never an absolute URL (an open redirect)."""
    if value and value.startswith("/console/") and "//" not in value and "\\" not in value:
        return value
    return None


def console_app(gateway: Gateway) -> Starlette:
    """The console as its own Starlette app (mounted at ``/console``)."""
    pages = ConsolePages(gateway)
    routes: list[BaseRoute] = [
        Route("/", pages.home, methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Mount("/static", app=StaticFiles(packages=[("tollway.console", "static")]), name="static"),
        Route("/{page}", pages.page, methods=["GET"]),
    ]
    middleware = [Middleware(SecurityHeaders), Middleware(GZipMiddleware, minimum_size=1000)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.gateway = gateway
    return app


async def _to_console(request: Request) -> Response:
    return RedirectResponse("/console", status_code=307)


def console_routes(gateway: Gateway) -> list[BaseRoute]:
    """``/`` redirects to the console; ``/console`` serves it; the Rankings page's data route
    (its answer cache lives as long as this app)."""
    return [Route("/", _to_console, methods=["GET"]),
            Route("/api/v1/console/rankings", page_rankings_endpoint(), methods=["GET"]),
            Mount("/console", app=console_app(gateway))]
