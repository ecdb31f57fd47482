"""`commonlab login` without copying a secret: the OAuth 2.0 device authorization grant
(RFC 8628). A command line asks for a pair of codes; the person types the short user code
into the portal, where they are signed in, and approves it; the command line, polling with
the long device code, then fetches one token, scoped and expiring, never broader than the
sign-in that approved it.

Each use case runs in its own transaction. The refusals the token endpoint answers are
`OAuthError`s carrying RFC 6749/8628's error codes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.db import lock_for_writing, utcnow
from commonlab.errors import (
    AccessDenied,
    CommonlabError,
    Conflict,
    InvalidInput,
    NotFound,
    Unauthenticated,
)
from commonlab.identity import service
from commonlab.identity.device_models import DeviceGrant, DeviceGrantStatus
from commonlab.identity.events import IdentityEvent
from commonlab.identity.models import ApiToken
from commonlab.identity.schemas import TokenCreate
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import Principal, Scope

__all__ = [
    "CLIENTS",
    "DEVICE_CODE_GRANT",
    "LIFETIME",
    "MAX_CODE_CHARS",
    "POLL_INTERVAL",
    "SLOW_DOWN_STEP",
    "TOKEN_DAYS",
    "USER_CODE_ALPHABET",
    "DeviceRequest",
    "OAuthError",
    "PendingDevice",
    "approve",
    "deny",
    "exchange",
    "format_user_code",
    "normalize_user_code",
    "pending_device",
    "start",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# The public clients that may ask (a device grant's client has no secret to prove).
CLIENTS = {"commonlab-cli": "the commonlab command line"}
# RFC 8628 §6.1: consonants only (no vowels, so no words; no 0/O or 1/I to confuse), eight of
# them: 20**8, about 2.6e10 codes, for a request that lives ten minutes.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
LIFETIME = timedelta(minutes=10)
POLL_INTERVAL = 5  # seconds, RFC 8628's default
SLOW_DOWN_STEP = 5  # seconds added to the interval at each slow_down (RFC 8628 §3.5)
TOKEN_DAYS = 30
# Our device codes are 43 characters; anything far longer is not one of them.
MAX_CODE_CHARS = 128
DEFAULT_SCOPES = (Scope.READ, Scope.WRITE)
# Anyone may ask for codes: requests a day past their expiry are deleted as new ones come, so
# the table holds about a day of requests whatever the traffic (the rate limits bound that).
KEEP_EXPIRED = timedelta(days=1)


class OAuthError(CommonlabError):
    """A refusal at the token or device authorization endpoint, answered as RFC 6749 §5.2
    JSON: `error` is the standard code, the message its `error_description`."""

    def __init__(self, error: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


@dataclass(frozen=True)
class DeviceRequest:
    """What the device authorization endpoint answers (RFC 8628 §3.2), less the URIs."""

    device_code: str
    user_code: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class PendingDevice:
    """What the person approving a request is shown: who asks, from where, for what."""

    user_code: str
    client: str
    requested_from: str | None
    created_at: datetime
    expires_at: datetime
    asked: list[str]
    # What the token will have: the scopes asked for that this sign-in has.
    granted: list[str]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def normalize_user_code(text: str) -> str:
    """The user code as typed (any case, with or without its dash or spaces), as issued; or
    InvalidInput saying what a code looks like."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        raise InvalidInput(
            "a code is eight letters shown by `commonlab login`, like BDFH-JKLM: copy it from "
            "your terminal"
        )
    return code


def format_user_code(code: str) -> str:
    half = USER_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def _scopes(scope: str | None) -> list[str]:
    if scope is None or not scope.strip():
        return [str(s) for s in DEFAULT_SCOPES]
    asked = scope.split()
    known = {str(s) for s in Scope}
    if unknown := [s for s in asked if s not in known]:
        raise OAuthError(
            "invalid_scope",
            f"unknown scope {unknown[0][:40]!r}: ask for any of {', '.join(sorted(known))}",
        )
    return sorted(set(asked))


def _client(client_id: str | None) -> str:
    if not client_id:
        raise OAuthError("invalid_request", "client_id is missing: send client_id=commonlab-cli")
    if client_id not in CLIENTS:
        raise OAuthError(
            "invalid_client",
            f"unknown client_id: this facility knows {', '.join(sorted(CLIENTS))}",
            status=401,
        )
    return client_id


# The device's side --------------------------------------------------------------------------


def start(
    db: Session,
    *,
    client_id: str | None,
    scope: str | None,
    requested_from: str | None = None,
    now: datetime | None = None,
) -> DeviceRequest:
    """A device asks to sign in: a new pair of codes, alive for LIFETIME."""
    client = _client(client_id)
    scopes = _scopes(scope)
    now = now or utcnow()
    device_code = secrets.token_urlsafe(32)
    with db.begin():
        db.execute(delete(DeviceGrant).where(DeviceGrant.expires_at < now - KEEP_EXPIRED))
        user_code = _unused_user_code(db)
        db.add(
            DeviceGrant(
                device_code_sha256=_sha256(device_code),
                user_code_sha256=_sha256(user_code),
                client_id=client,
                scopes=scopes,
                requested_from=(requested_from or "")[:64] or None,
                status=DeviceGrantStatus.PENDING,
                created_at=now,
                expires_at=now + LIFETIME,
                interval=POLL_INTERVAL,
            )
        )
    return DeviceRequest(
        device_code=device_code,
        user_code=format_user_code(user_code),
        expires_in=int(LIFETIME.total_seconds()),
        interval=POLL_INTERVAL,
    )


def _unused_user_code(db: Session) -> str:
    # A clash among 2.6e10 codes is rare; a code once issued is never issued again.
    while True:
        code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
        taken = db.scalar(
            select(DeviceGrant.id).where(DeviceGrant.user_code_sha256 == _sha256(code))
        )
        if taken is None:
            return code


def exchange(
    db: Session,
    *,
    client_id: str | None,
    device_code: str | None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """The device polls with its device code: the token once approved (once only), else an
    OAuthError: authorization_pending, slow_down (polled sooner than its interval; the
    interval grows), access_denied, expired_token, invalid_grant (unknown or used)."""
    client = _client(client_id)
    if not device_code:
        raise OAuthError("invalid_request", "device_code is missing: send the one you were given")
    if len(device_code) > MAX_CODE_CHARS:
        raise OAuthError("invalid_grant", "this is not a device code of this facility")
    now = now or utcnow()
    with db.begin():
        lock_for_writing(db)
        grant = db.scalar(
            select(DeviceGrant)
            .where(DeviceGrant.device_code_sha256 == _sha256(device_code))
            .with_for_update()
        )
        # The poll's time and a grown interval are kept even when the poll is refused, so
        # the refusal is decided here and raised once the transaction has committed.
        refusal = _poll(grant, client, now)
        if refusal is None:
            assert grant is not None
            grant.status = DeviceGrantStatus.USED
            grant.used_at = now
            grant_id, person_id = grant.id, grant.person_id
            approver_token_id, scopes = grant.approver_token_id, list(grant.scopes)
    if refusal is not None:
        raise refusal
    token, secret = _issue(db, grant_id, person_id, approver_token_id, scopes, now)
    with db.begin():
        db.get_one(DeviceGrant, grant_id).token_id = token.id
    return token, secret


def _poll(grant: DeviceGrant | None, client: str, now: datetime) -> OAuthError | None:
    """Why this poll gets no token (recording the poll on `grant`), or None to issue it."""
    if grant is None or grant.client_id != client:
        return OAuthError("invalid_grant", "unknown device code: run `commonlab login` again")
    if grant.status == DeviceGrantStatus.USED:
        return OAuthError(
            "invalid_grant",
            "this device code was already exchanged for a token: a code works once; run "
            "`commonlab login` again",
        )
    if grant.expires_at <= now:
        return OAuthError(
            "expired_token", "this sign-in request expired: run `commonlab login` again"
        )
    if grant.status == DeviceGrantStatus.DENIED:
        return OAuthError("access_denied", "the sign-in request was denied in the browser")
    too_soon = grant.last_polled_at is not None and now - grant.last_polled_at < timedelta(
        seconds=grant.interval
    )
    grant.last_polled_at = now
    if too_soon:
        grant.interval += SLOW_DOWN_STEP
        return OAuthError(
            "slow_down", f"polled too often: wait {grant.interval} seconds between polls"
        )
    if grant.status == DeviceGrantStatus.PENDING:
        return OAuthError(
            "authorization_pending", "not approved yet: enter the code in the browser"
        )
    return None


def _issue(
    db: Session,
    grant_id: int,
    person_id: int | None,
    approver_token_id: int | None,
    scopes: list[str],
    now: datetime,
) -> tuple[ApiToken, str]:
    """The token, issued as the sign-in that approved the request, checked again now: a
    token revoked or expired since, or a person deactivated since, issues nothing."""
    if person_id is None or approver_token_id is None:
        raise OAuthError("access_denied", "this request was approved by no one")
    try:
        approver = service.authenticate_token_id(db, approver_token_id, now=now)
        return service.issue_token(
            db,
            approver,
            person_id,
            TokenCreate(
                name=f"commonlab login (device grant {grant_id})",
                scopes=[Scope(s) for s in scopes if approver.has_scope(Scope(s))],
                expires_in_days=TOKEN_DAYS,
            ),
        )
    except (Unauthenticated, AccessDenied, Conflict, InvalidInput) as exc:
        raise OAuthError(
            "access_denied", f"the sign-in that approved this request no longer may: {exc}"
        ) from None


# The approving person's side ----------------------------------------------------------------


def pending_device(
    db: Session, actor: Principal, user_code: str, *, now: datetime | None = None
) -> PendingDevice:
    """The request this user code names, as the signed-in `actor` would approve it."""
    code = normalize_user_code(user_code)
    now = now or utcnow()
    with db.begin():
        grant = _pending(db, actor, code, now)
        return _shown(grant, code, actor)


def approve(
    db: Session, actor: Principal, user_code: str, *, now: datetime | None = None
) -> PendingDevice:
    """The signed-in person approves: the device may fetch one token, with the scopes it
    asked for that this sign-in has, and no later than this sign-in's token expires. On the
    record; the token's issue is too, when the device fetches it."""
    code = normalize_user_code(user_code)
    now = now or utcnow()
    with db.begin():
        lock_for_writing(db)
        grant = _pending(db, actor, code, now, for_update=True)
        shown = _shown(grant, code, actor)
        if not shown.granted:
            raise AccessDenied(
                f"this sign-in has none of the scopes asked for ({', '.join(shown.asked)}): "
                "sign in with a token that has them"
            )
        grant.status = DeviceGrantStatus.APPROVED
        grant.scopes = shown.granted
        grant.person_id = actor.person_id
        grant.approver_token_id = actor.token_id
        grant.decided_at = now
        record.append(
            db,
            IdentityEvent.DeviceGrantApproved,
            actor=actor,
            subject=f"device_grant/{grant.id}",
            data={"holder": actor.pseudonym, "client": grant.client_id, "scopes": shown.granted},
        )
    return shown


def deny(db: Session, actor: Principal, user_code: str, *, now: datetime | None = None) -> None:
    """The signed-in person denies: the device's next poll is told access_denied."""
    code = normalize_user_code(user_code)
    now = now or utcnow()
    with db.begin():
        lock_for_writing(db)
        grant = _pending(db, actor, code, now, for_update=True)
        grant.status = DeviceGrantStatus.DENIED
        grant.person_id = actor.person_id
        grant.decided_at = now


def _pending(
    db: Session, actor: Principal, code: str, now: datetime, *, for_update: bool = False
) -> DeviceGrant:
    """The pending request with this code, for a signed-in person who may issue themself a
    token; NotFound for a code unknown, decided already or expired (alike: nothing to tell
    a guesser)."""
    if actor.person_id is None or actor.token_id is None:
        raise Unauthenticated("sign in to the portal first, then enter the code")
    authorize(actor, Action.TokenIssue, Resource.token(actor.person_id))
    query = select(DeviceGrant).where(DeviceGrant.user_code_sha256 == _sha256(code))
    grant = db.scalar(query.with_for_update() if for_update else query)
    if grant is None or grant.status != DeviceGrantStatus.PENDING or grant.expires_at <= now:
        raise NotFound(
            "no sign-in request is waiting with this code (it may have expired or been "
            "answered already): run `commonlab login` again for a new one"
        )
    return grant


def _shown(grant: DeviceGrant, code: str, actor: Principal) -> PendingDevice:
    asked = sorted(grant.scopes)
    return PendingDevice(
        user_code=format_user_code(code),
        client=CLIENTS.get(grant.client_id, grant.client_id),
        requested_from=grant.requested_from,
        created_at=grant.created_at,
        expires_at=grant.expires_at,
        asked=asked,
        granted=[s for s in asked if actor.has_scope(Scope(s))],
    )
