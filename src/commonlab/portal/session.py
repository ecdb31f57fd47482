"""The portal's sign-in session: the API token in a signed, HttpOnly, SameSite cookie, and
a CSRF token bound to it for every form."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer

__all__ = ["SESSION_COOKIE", "csrf_token", "session_value", "token_from_cookie"]

SESSION_COOKIE = "commonlab_session"
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
