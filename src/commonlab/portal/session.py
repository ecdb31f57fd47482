"""The portal's sign-in session: the API token in a signed, HttpOnly, SameSite cookie, and
a CSRF token bound to it for every form (and, for scripts, the X-CSRF-Token header)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from urllib.parse import urlsplit

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer

from commonlab.errors import AccessDenied

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE",
    "UNSAFE_METHODS",
    "check_same_origin",
    "cookie_max_age",
    "csrf_matches",
    "csrf_token",
    "raw_session",
    "require_api_csrf",
    "session_value",
    "token_from_cookie",
]

SESSION_COOKIE = "commonlab_session"
CSRF_HEADER = "X-CSRF-Token"
# A browser session outlives no working day, whatever the token's own expiry.
SESSION_MAX_AGE = 12 * 60 * 60
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SALT = "commonlab.portal.session"


def _serializer(secret: bytes) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


def session_value(secret: bytes, token: str) -> str:
    return _serializer(secret).dumps({"t": token})


def token_from_cookie(request: Request) -> str | None:
    """The token of a signed-in browser, or None. A forged or stale cookie is ignored."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(request.app.state.facility.session_secret).loads(raw)
    except BadSignature:
        return None
    token = data.get("t") if isinstance(data, dict) else None
    return token if isinstance(token, str) else None


def csrf_token(secret: bytes, session: str | None) -> str:
    """Bound to the session cookie (or to 'anonymous' before sign-in)."""
    message = (session or "anonymous").encode()
    return hmac.new(secret, b"csrf:" + message, hashlib.sha256).hexdigest()


def raw_session(request: Request) -> str | None:
    """The session cookie exactly as sent (what a CSRF token is bound to), or None."""
    return request.cookies.get(SESSION_COOKIE) or None


def csrf_matches(request: Request, given: str | None) -> bool:
    """Whether `given` is the CSRF token of this request's session (constant time)."""
    if not given:
        return False
    expected = csrf_token(request.app.state.facility.session_secret, raw_session(request))
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def check_same_origin(request: Request) -> str | None:
    """Why this unsafe request looks cross-site, or None when it does not.

    Browsers send Origin (and Sec-Fetch-Site) on every cross-site POST; a request without them
    is not from a browser form on another site, and the CSRF token still has to match.
    """
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return "the request came from another site"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    host = request.headers.get("host", "")
    allowed = {host.lower()} if host else set()
    public_url = request.app.state.facility.settings.public_url
    if public_url:
        allowed.add(urlsplit(public_url).netloc.lower())
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if not netloc or netloc not in allowed:
        return f"the request came from {origin!r}, not from this site"
    return None


def require_api_csrf(request: Request) -> None:
    """For an API request authenticated only by the session cookie: refuse unsafe methods
    unless they carry the session's CSRF token in the X-CSRF-Token header.

    A cookie rides along with any request a browser makes, so a page on another site could
    otherwise POST to the API as the signed-in person. Bearer tokens are not sent
    automatically and need no such check.
    """
    if request.method.upper() not in UNSAFE_METHODS:
        return
    if not csrf_matches(request, request.headers.get(CSRF_HEADER)):
        raise AccessDenied(
            f"a request signed in by the portal cookie must send the {CSRF_HEADER} header "
            "from the page (or use 'Authorization: Bearer <token>')"
        )
    if reason := check_same_origin(request):
        raise AccessDenied(f"{reason}: cross-site requests may not change anything")


def cookie_max_age(token_expires_at: datetime | None, now: datetime) -> int:
    """Seconds the session cookie may live: never past the token's expiry, at most a day's work."""
    if token_expires_at is None:
        return SESSION_MAX_AGE
    left = int((token_expires_at - now).total_seconds())
    return max(0, min(SESSION_MAX_AGE, left))
