"""Sessions, CSRF, login throttling, body limits and security headers for the console.

Sessions are signed cookies (itsdangerous, through Starlette's SessionMiddleware): HttpOnly,
SameSite=Strict, Secure, with a maximum age of one shift counted from the login itself (the
login time is inside the signed cookie; activity does not extend it). The cookie carries the user's
*session epoch*; logging out or being locked bumps the epoch in ``records.db``, which ends every
copy of the cookie at once, so a stolen cookie dies with a logout.

CSRF: each session holds a random token. Every form carries it in a hidden field and every
unsafe API call in the ``X-CSRF-Token`` header; a request without the right one is refused
with 403 before anything runs. SameSite=Strict alone would stop most cross-site posts, the
token also stops them from sibling sub-domains and old browsers.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.console.users import Permission, User, allowed

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SESSION_COOKIE = "gate_edge_session"


class LoginRequired(Exception):
    """No valid session; pages redirect to /login, the API answers 401."""


class CsrfRejected(Exception):
    """Missing or wrong CSRF token."""


class PermissionDenied(Exception):
    """Logged in, but the role lacks the permission (403)."""

    def __init__(self, permission: Permission) -> None:
        super().__init__(f"your role may not {permission.value}")
        self.permission = permission


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, supplied: str | None) -> None:
    """Refuse the request unless ``supplied`` equals the session's token."""
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not supplied or not hmac.compare_digest(
            expected.encode(), supplied.encode()):
        raise CsrfRejected()


def start_session(request: Request, user: User) -> str:
    """Fresh session after login (no fixation): new CSRF token, user and epoch."""
    request.session.clear()
    request.session.update({"user": user.name, "epoch": user.session_epoch,
                            "at": int(time.time())})
    return csrf_token(request)


def session_user(request: Request) -> User:
    """The logged-in user; LoginRequired when the session is missing, stale or ended."""
    name = request.session.get("user")
    if not isinstance(name, str):
        raise LoginRequired()
    service = request.app.state.service
    user = service.user(name)
    started = request.session.get("at")
    # The cookie's own signature age restarts whenever the session changes (a notice after
    # every action), so it cannot bound a login; the login time inside it does.
    limit = service.cfg.console.session_max_age.total_seconds()
    expired = not isinstance(started, int) or time.time() - started > limit
    if (user is None or user.disabled or expired
            or user.session_epoch != request.session.get("epoch")):
        request.session.clear()
        raise LoginRequired()
    return user


def require(user: User, permission: Permission) -> User:
    """Raise PermissionDenied unless the user's role carries the permission."""
    if not allowed(user.role, permission):
        raise PermissionDenied(permission)
    return user


def client_address(request: Request) -> str:
    """Best-known client address for throttling and the audit trail."""
    return request.client.host if request.client else "unknown"


class LoginThrottle:
    """At most N login attempts per client address per minute (sliding window, in memory)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._attempts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def attempt(self, client: str, now: float | None = None) -> float:
        """Record an attempt; returns 0 if allowed, else seconds until the next is allowed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._attempts.setdefault(client, deque())
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= self.per_minute:
                return max(1.0, 60 - (now - window[0]))
            window.append(now)
            if len(self._attempts) > 10000:  # forget idle addresses; bounded memory
                for key in [k for k, v in self._attempts.items() if not v][:5000]:
                    del self._attempts[key]
            return 0.0


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count what actually arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = False
                await _plain(send, 400, b"Content-Length is not a number")
                return
            if too_big:
                await _plain(send, 413, b"request body too large")
                return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read the body here, up to the limit, then replay it.
        # 64 KiB by default, so buffering costs nothing and the app never sees a partial body.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await _plain(send, 413, b"request body too large")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                                "form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """Add the headers above to every response (static files may be cached)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers when the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers") or [])
                present = {k.lower() for k, _ in headers}
                for key, value in SECURITY_HEADERS.items():
                    if key == "Cache-Control" and static:
                        continue
                    if key.lower().encode() not in present:
                        headers.append((key.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
