"""The portal's sign-in session: an opaque random id in an HttpOnly, SameSite cookie,
naming a session kept on the server (portal_sessions) that expires there and ends at
sign-out; and a CSRF token bound to it for every form (and the X-CSRF-Token header).

The API token a person signs in with never goes into the cookie: a copied cookie is worth
one session at most, and nothing once that session has ended.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from commonlab.db import utcnow
from commonlab.errors import AccessDenied, Conflict, NotFound, Unauthenticated
from commonlab.identity import service as identity
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import PUBLIC, Principal
from commonlab.portal.models import PortalSession

__all__ = [
    "CSRF_HEADER",
    "MAX_RETURN_CHARS",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE",
    "UNSAFE_METHODS",
    "check_same_origin",
    "cookie_max_age",
    "csrf_matches",
    "csrf_token",
    "end_session",
    "end_session_of",
    "end_sessions_of",
    "live_sessions",
    "raw_session",
    "require_api_csrf",
    "session_digest",
    "session_principal",
    "start_session",
]

SESSION_COOKIE = "commonlab_session"
CSRF_HEADER = "X-CSRF-Token"
# A browser session outlives no working day, whatever the token's own expiry.
SESSION_MAX_AGE = 12 * 60 * 60
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _sha256(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


def start_session(db: Session, principal: Principal, *, now: datetime | None = None) -> str:
    """Open a session for a principal who just proved a token; the id for the cookie.

    A fresh random id at every sign-in (so no id chosen by someone else is ever adopted),
    expiring on the server after a working day or with the token, whichever comes first.
    """
    if principal.person_id is None or principal.token_id is None:
        raise Unauthenticated("only a person's token opens a session: sign in with one")
    now = now or utcnow()
    session_id = secrets.token_urlsafe(32)
    lifetime = cookie_max_age(principal.token_expires_at, now)
    with db.begin():
        db.add(
            PortalSession(
                id_sha256=_sha256(session_id),
                person_id=principal.person_id,
                token_id=principal.token_id,
                created_at=now,
                expires_at=now + timedelta(seconds=lifetime),
            )
        )
    return session_id


def session_principal(
    db: Session, request: Request, *, now: datetime | None = None
) -> Principal | None:
    """The principal of this browser's live session; None when it sends no session cookie.

    Raises Unauthenticated, saying why, when the cookie names no live session (unknown,
    ended at sign-out, expired) or the session's token no longer works.
    """
    session_id = raw_session(request)
    if session_id is None:
        return None
    now = now or utcnow()
    with db.begin():
        row = db.scalar(select(PortalSession).where(PortalSession.id_sha256 == _sha256(session_id)))
        if row is None:
            raise Unauthenticated("this browser's sign-in is not valid here: sign in again")
        if row.ended_at is not None:
            raise Unauthenticated("this sign-in was ended by signing out: sign in again")
        if row.expires_at <= now:
            raise Unauthenticated("this sign-in has expired: sign in again")
        token_id = row.token_id
    return identity.authenticate_token_id(db, token_id, now=now)


def end_session(db: Session, request: Request, *, now: datetime | None = None) -> None:
    """End this browser's session on the server: its cookie, replayed, signs no one in."""
    session_id = raw_session(request)
    if session_id is None:
        return
    with db.begin():
        db.execute(
            update(PortalSession)
            .where(PortalSession.id_sha256 == _sha256(session_id))
            .where(PortalSession.ended_at.is_(None))
            .values(ended_at=now or utcnow())
        )


def csrf_token(secret: bytes, session: str | None) -> str:
    """Bound to the session cookie (or to 'anonymous' before sign-in)."""
    message = (session or "anonymous").encode()
    return hmac.new(secret, b"csrf:" + message, hashlib.sha256).hexdigest()


def cookie_principal(request: Request, db: Session) -> Principal | None:
    """The principal of the browser's portal session, for the API as for pages; None when it
    sends no session cookie. A browser sends the cookie with any site's request, so a change
    needs the CSRF token too. Installed by `mount_portal` (`http.install_authenticator`)."""
    if raw_session(request) is None:
        return None
    require_api_csrf(request)
    return session_principal(db, request) or PUBLIC


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


def signed_in_at(
    db: Session, request: Request, principal: Principal, destination: str
) -> RedirectResponse:
    """Sign this browser in as `principal` (a token just proved, or a provider's sign-in):
    end the session it held, open a new one, and send it on to `destination`."""
    end_session(db, request)  # a session this browser held before ends here
    session_id = start_session(db, principal)
    response = RedirectResponse(destination, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=cookie_max_age(principal.token_expires_at, utcnow()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.app.state.facility.settings.secure_cookies,
    )
    return response


# Where a sign-in may send the browser afterwards: one of the portal's own pages, never another
# site. Browsers read `//evil.example` and `/\evil.example` as another host, so a path must
# start with one slash and hold no backslash; control characters end it early.
MAX_RETURN_CHARS = 512


def return_path(value: str | None, *, default: str = "/me") -> str:
    """`value` if it names a page of this portal by its path (and query), else `default`."""
    if not value or len(value) > MAX_RETURN_CHARS or not value.isprintable():
        return default
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    return value if not (parts.scheme or parts.netloc) else default


def cookie_max_age(token_expires_at: datetime | None, now: datetime) -> int:
    """Seconds a session may live: never past the token's expiry, at most a day's work."""
    if token_expires_at is None:
        return SESSION_MAX_AGE
    left = int((token_expires_at - now).total_seconds())
    return max(0, min(SESSION_MAX_AGE, left))


# A person's sessions: listed and ended by themself or an operator ----------------------------
# Who may see and end a person's sessions is who may list and revoke their tokens: a session
# is a sign-in's credential as a token is. Sessions are not on the public record (they say when
# someone was online); the tokens revoked beside them are.


def session_digest(session_id: str) -> str:
    """What the server keeps of a session's id (to tell which listed session is this one)."""
    return _sha256(session_id)


def live_sessions(
    db: Session, actor: Principal, person_id: int, *, limit: int, now: datetime | None = None
) -> list[PortalSession]:
    """The person's sessions still open (not ended, not expired), newest first."""
    authorize(actor, Action.TokenList, Resource.token(person_id))
    now = now or utcnow()
    with db.begin():
        return list(
            db.scalars(
                select(PortalSession)
                .where(
                    PortalSession.person_id == person_id,
                    PortalSession.ended_at.is_(None),
                    PortalSession.expires_at > now,
                )
                .order_by(PortalSession.id.desc())
                .limit(limit)
            )
        )


def end_session_of(
    db: Session,
    actor: Principal,
    person_id: int,
    session_row_id: int,
    *,
    now: datetime | None = None,
) -> None:
    """End one of the person's sessions, whichever browser holds it."""
    authorize(actor, Action.TokenRevoke, Resource.token(person_id))
    with db.begin():
        row = db.get(PortalSession, session_row_id)
        if row is None or row.person_id != person_id:
            raise NotFound(f"no session {session_row_id} of this person")
        if row.ended_at is not None:
            raise Conflict("this session has ended already")
        row.ended_at = now or utcnow()


def end_sessions_of(
    db: Session, actor: Principal, person_id: int, *, now: datetime | None = None
) -> int:
    """End every open session of the person (signed out everywhere); how many were open."""
    authorize(actor, Action.TokenRevoke, Resource.token(person_id))
    with db.begin():
        ended = db.execute(
            update(PortalSession)
            .where(PortalSession.person_id == person_id, PortalSession.ended_at.is_(None))
            .values(ended_at=now or utcnow())
        )
    return int(ended.rowcount or 0)
