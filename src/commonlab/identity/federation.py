"""Signing in with an OpenID Connect provider: a university's, a federation's proxy (eduGAIN
reaches OpenID Connect through them), or ORCID.

The authorization code flow with PKCE (RFC 7636), a state and a nonce, in two calls:

    begin()    keeps a FederationLogin (the state's SHA-256, the nonce, the PKCE verifier and
               the SHA-256 of a secret the browser keeps in a cookie) and returns the
               provider's authorization URL
    finish()   when the provider sends the browser back: spends the state (once, from the
               same browser, within ten minutes), exchanges the code at the token endpoint,
               checks the ID token (its signature against the provider's published keys, then
               iss, aud, exp and the nonce), and finds the person by issuer and `sub` or
               creates them, or links the identity to the person who asked to link it

Rules:
- a person is known at a provider by the issuer and its `sub`, never by e-mail: an address
  changes hands, a subject at an issuer does not;
- roles and clearances never come from a provider: a new person has none;
- the institution comes from a claim (`schac_home_organization` by default, or the issuer)
  through an operator's rule (AffiliationMapping); an affiliation no rule maps waits for an
  operator (PendingAffiliation) and the person has no institution meanwhile;
- a person deactivated at the facility cannot sign in, whatever the provider says;
- a person's name and e-mail follow what the provider says at each sign-in, unless the
  person changed them here (`_follow_claims`); nothing else does;
- every change of a person's access is on the record: a person created, an identity linked,
  an institution set, the session token issued.

A refused sign-in changes nothing but spending its state.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.config import OidcProvider
from commonlab.db import get_or_404, lock_for_writing, utcnow
from commonlab.errors import AccessDenied, CommonlabError, Conflict, InvalidInput, Unauthenticated
from commonlab.identity.events import IdentityEvent
from commonlab.identity.federation_models import (
    AffiliationMapping,
    FederatedIdentity,
    FederationLogin,
    PendingAffiliation,
)
from commonlab.identity.models import Institution, Person
from commonlab.identity.schemas import TokenCreate
from commonlab.identity.service import (
    _add_token,
    _institution_resource,
    _managed_changes,
    _new_pseudonym,
    _new_token,
    _private_fields,
)
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import SYSTEM, Principal, Role, Scope

__all__ = [
    "LOGIN_MINUTES",
    "SESSION_HOURS",
    "Account",
    "AffiliationRow",
    "IdentityRow",
    "Outcome",
    "ProviderUnavailable",
    "account",
    "begin",
    "dismiss_affiliation",
    "finish",
    "forget_providers",
    "map_affiliation",
    "pending_affiliations",
    "provider_named",
    "verify_id_token",
]

# A trip to the provider and back must end within this; a state is spent at the first try.
LOGIN_MINUTES = 10
# The session a federated sign-in opens, and its token, last one working day at most.
SESSION_HOURS = 12
# How long a provider's discovery document and keys are trusted before they are fetched again
# (a key the provider rotated in is fetched at once: see _keys).
METADATA_SECONDS = 600
HTTP_TIMEOUT_SECONDS = 10.0
# A provider whose discovery document did not come is not asked again for this long.
DOWN_SECONDS = 30.0
# Asymmetric signatures only: never "none", never a MAC keyed with the client secret.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
# Tolerated difference between the provider's clock and ours.
LEEWAY_SECONDS = 60
ORCID_ID = re.compile(r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
_MAX_STATE = 200
_MAX_CODE = 2048
_MAX_ID_TOKEN = 16_384
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


class ProviderUnavailable(CommonlabError):
    """The provider did not answer, or answered with something that is not OpenID Connect."""

    status = 502
    slug = "provider-unavailable"
    title = "Identity provider unavailable"


@dataclass(frozen=True)
class Outcome:
    """What a finished sign-in did: who, whether they are new, and the session's token."""

    person_id: int
    provider: str
    created: bool
    linked: bool  # an identity was linked to a person already signed in
    token_id: int | None  # the session token of a sign-in (None when linking)
    pending_affiliation: str | None


def provider_named(providers: Sequence[OidcProvider], name: str) -> OidcProvider:
    for provider in providers:
        if provider.name == name:
            return provider
    raise InvalidInput(f"no identity provider is called {name[:40]!r} here")


# The flow -----------------------------------------------------------------------------------


def begin(
    db: Session,
    provider: OidcProvider,
    *,
    redirect_uri: str,
    link_person_id: int | None = None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """Start a trip to the provider: the authorization URL, and the secret the browser keeps
    (in a cookie) to prove at the callback that it is the browser that left."""
    now = now or utcnow()
    metadata = _metadata(provider)  # a provider that is down fails here, before any row
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 wants 43 to 128
    browser = secrets.token_urlsafe(32)
    with _client(provider, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
    with db.begin():
        # Trips past their ten minutes can sign no one in: gone, so that anonymous visitors
        # starting trips keep at most ten minutes' worth of rows.
        db.execute(delete(FederationLogin).where(FederationLogin.expires_at < now))
        db.add(
            FederationLogin(
                state_sha256=_sha256(state),
                browser_sha256=_sha256(browser),
                provider=provider.name,
                nonce=nonce,
                code_verifier=verifier,
                link_person_id=link_person_id,
                created_at=now,
                expires_at=now + timedelta(minutes=LOGIN_MINUTES),
            )
        )
    return url, browser


def finish(
    db: Session,
    providers: Sequence[OidcProvider],
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    browser: str | None,
    redirect_uri: str,
    now: datetime | None = None,
) -> Outcome:
    """The provider sent the browser back: check everything, then sign in or link."""
    now = now or utcnow()
    login = _spend(db, state, browser, now)
    provider = provider_named(providers, login.provider)
    if error:
        raise Unauthenticated(
            f"{provider.display_name} did not sign you in ({_short(error)}): nothing was "
            "changed; start again if you meant to"
        )
    if not code or len(code) > _MAX_CODE:
        raise Unauthenticated("the provider sent no usable code back: start again")
    id_token = _exchange(provider, code, login.code_verifier, redirect_uri)
    claims = verify_id_token(provider, id_token, nonce=login.nonce, now=now)
    if login.link_person_id is not None:
        return _link(db, provider, claims, login.link_person_id, now)
    return _sign_in(db, provider, claims, now)


def _spend(db: Session, state: str | None, browser: str | None, now: datetime) -> FederationLogin:
    """The trip this state names, spent now: a state works once, from the browser that
    began the trip, within LOGIN_MINUTES. Spent even when a later check fails."""
    if not state or len(state) > _MAX_STATE:
        raise Unauthenticated("this sign-in came back without its state: start again")
    with db.begin():
        lock_for_writing(db)
        digest = _sha256(state)
        login = db.scalar(select(FederationLogin).where(FederationLogin.state_sha256 == digest))
        if login is None:
            raise Unauthenticated("this sign-in is unknown here (a wrong state): start again")
        spent = db.execute(
            update(FederationLogin)
            .where(FederationLogin.id == login.id, FederationLogin.used_at.is_(None))
            .values(used_at=now)
        )
        first_use = spent.rowcount == 1  # type: ignore[attr-defined]
        db.refresh(login)
        db.expunge(login)
    # Committed: whatever is wrong below, this state signs no one in again.
    if not first_use:
        raise Unauthenticated("this sign-in was already used once: start again")
    if not browser or not hmac.compare_digest(login.browser_sha256, _sha256(browser)):
        raise Unauthenticated(
            "this sign-in was started in another browser (or this browser's cookies were "
            "cleared): start again here"
        )
    if login.expires_at <= now:
        raise Unauthenticated(f"this sign-in took longer than {LOGIN_MINUTES} minutes: start again")
    return login


def _exchange(provider: OidcProvider, code: str, verifier: str, redirect_uri: str) -> str:
    """The ID token the provider gives for this code (and our PKCE verifier)."""
    metadata = _metadata(provider)
    client = _client(provider, redirect_uri)
    try:
        token = client.fetch_token(
            metadata["token_endpoint"],
            code=code,
            code_verifier=verifier,
            timeout=HTTP_TIMEOUT_SECONDS,
        )
    except OAuthError as exc:
        raise Unauthenticated(
            f"{provider.display_name} refused this sign-in's code ({_short(exc.error or '')}; a "
            "code works once, for minutes): start again"
        ) from None
    except _TRANSPORT_ERRORS as exc:
        raise ProviderUnavailable(
            f"{provider.display_name} did not answer the token request ({type(exc).__name__}): "
            "try again later"
        ) from None
    finally:
        client.close()
    id_token = token.get("id_token")
    if not isinstance(id_token, str) or not id_token or len(id_token) > _MAX_ID_TOKEN:
        raise Unauthenticated(f"{provider.display_name} sent no ID token: start again")
    return id_token


def verify_id_token(
    provider: OidcProvider, id_token: str, *, nonce: str, now: datetime | None = None
) -> dict[str, Any]:
    """The claims of an ID token this provider signed for us, for this trip, still valid.

    Its signature must verify with a key the provider publishes (an asymmetric algorithm);
    `iss` must be the provider's issuer exactly, `aud` our client id (and `azp` too when
    several audiences are named), `exp` in the future, `nonce` the one this trip sent, and
    `sub` present. Anything else is refused with what was wrong."""
    now_ts = int((now or utcnow()).timestamp())
    name = provider.display_name
    try:
        token = jwt.decode(id_token, _keys(provider, id_token), algorithms=ALGORITHMS)
    except JoseError as exc:
        raise Unauthenticated(
            f"the ID token from {name} is not signed by a key it publishes "
            f"({exc.error}): nothing was changed"
        ) from None
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        now=now_ts,
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        sub={"essential": True},
        exp={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise Unauthenticated(f"the ID token from {name} has expired: start again") from None
    except MissingClaimError as exc:
        raise Unauthenticated(
            f"the ID token from {name} lacks a claim ({exc.description})"
        ) from None
    except JoseError as exc:
        raise Unauthenticated(
            f"the ID token from {name} is not for this sign-in ({exc.description}: the "
            "issuer, the audience or the nonce differ): nothing was changed"
        ) from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != provider.client_id:
        raise Unauthenticated(f"the ID token from {name} was issued to another client (azp)")
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= 255 or not _PRINTABLE.match(subject):
        raise Unauthenticated(f"the ID token from {name} names no usable subject (sub)")
    return claims


# What a verified identity does ----------------------------------------------------------------


def _sign_in(db: Session, provider: OidcProvider, claims: dict[str, Any], now: datetime) -> Outcome:
    with db.begin():
        lock_for_writing(db)
        identity = _identity(db, provider.issuer, claims["sub"])
        created = identity is None
        if identity is None:
            if provider.kind == "orcid":
                raise Unauthenticated(
                    "ORCID proves an iD for an account that exists: sign in with your "
                    "institution first, then link your ORCID iD on your account page"
                )
            person = _new_federated_person(db, provider, claims, now)
            identity = _add_identity(db, provider, claims, person, actor=SYSTEM, now=now)
        else:
            person = get_or_404(db, Person, identity.person_id, "person")
            if not person.active:
                raise Unauthenticated(
                    "this account is deactivated at the facility: an operator can reactivate "
                    "it; signing in elsewhere does not"
                )
            _follow_claims(db, provider, claims, identity, person)
        identity.last_sign_in_at = now
        pending = _place(db, provider, claims, person, now)
        token_id = _session_token(db, person, provider, now)
    return Outcome(person.id, provider.name, created, False, token_id, pending)


def _link(
    db: Session, provider: OidcProvider, claims: dict[str, Any], person_id: int, now: datetime
) -> Outcome:
    """Link this provider's identity to the person who asked (signed in, on their account
    page). An identity belongs to one person; linking it again to the same one is a no-op."""
    subject = claims["sub"]
    with db.begin():
        lock_for_writing(db)
        person = get_or_404(db, Person, person_id, "person")
        if not person.active:
            raise Unauthenticated("this account is deactivated at the facility")
        identity = _identity(db, provider.issuer, subject)
        if identity is not None and identity.person_id != person.id:
            raise Conflict(
                f"this {provider.display_name} account is already linked to another person "
                "here: sign in with it instead, or ask an operator"
            )
        actor = Principal(pseudonym=person.pseudonym, person_id=person.id, name=person.name)
        if provider.kind == "orcid":
            _prove_orcid(db, person, subject, actor)
        if identity is None:
            _add_identity(db, provider, claims, person, actor=actor, now=now)
    return Outcome(person.id, provider.name, False, True, None, None)


def _follow_claims(
    db: Session,
    provider: OidcProvider,
    claims: dict[str, Any],
    identity: FederatedIdentity,
    person: Person,
) -> None:
    """Bring the person's name and e-mail to what the provider says now, where it says
    something new since its last sign-in and the person kept the provider's value here: a
    researcher keeps them at their institution. A value the person changed here stays theirs.
    A change waits (and is tried again at the next sign-in) while the name of a person in a
    public role is an operator's to change, or another person here has the e-mail."""
    said = {
        "name": _claim_text(claims, provider.name_claim, 200),
        "email": _claim_text(claims, provider.email_claim, 320),
    }
    last = {"name": identity.claimed_name, "email": identity.claimed_email}
    changes: dict[str, str] = {}
    for field, value in said.items():
        if value is None or value == last[field]:
            continue
        if last[field] is not None and getattr(person, field) == last[field]:
            if _must_wait(db, person, field, value):
                continue
            changes[field] = value
        setattr(identity, f"claimed_{field}", value)
    if changes:
        _update_privately(db, person, changes, SYSTEM)


def _must_wait(db: Session, person: Person, field: str, value: str) -> bool:
    """Whether a provider's new value for `field` must wait rather than be applied now."""
    if field == "name":
        return "name" in _managed_changes(person, {"name": value})
    if "@" not in value:
        return True  # not an address: nothing to follow
    taken = select(Person.id).where(Person.email == value, Person.id != person.id)
    return db.scalar(taken) is not None


def _prove_orcid(db: Session, person: Person, orcid: str, actor: Principal) -> None:
    """ORCID's `sub` is the iD itself: proven by signing in at ORCID, never typed."""
    if not ORCID_ID.match(orcid) or not _orcid_checksum_ok(orcid):
        raise Unauthenticated("the ORCID provider sent a subject that is not an ORCID iD")
    if person.orcid == orcid:
        return
    clash = db.scalar(select(Person.id).where(Person.orcid == orcid, Person.id != person.id))
    if clash is not None:
        raise Conflict("this ORCID iD belongs to another person here: ask an operator")
    _update_privately(db, person, {"orcid": orcid}, actor)


def _update_privately(
    db: Session, person: Person, changes: dict[str, str], actor: Principal
) -> None:
    """Set fields of a person the record keeps private (name, e-mail, ORCID iD), on the
    record with their values private."""
    for field, value in changes.items():
        setattr(person, field, value)
    record.append(
        db,
        IdentityEvent.PersonUpdated,
        actor=actor,
        subject=f"person/{person.pseudonym}",
        data={"changes": {}},
        private=changes,
    )


def _orcid_checksum_ok(orcid: str) -> bool:
    """ISO 7064 11,2, as ORCID computes its last character."""
    digits = orcid.replace("-", "")
    total = 0
    for ch in digits[:-1]:
        total = (total + int(ch)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


def _identity(db: Session, issuer: str, subject: str) -> FederatedIdentity | None:
    return db.scalar(
        select(FederatedIdentity).where(
            FederatedIdentity.issuer == issuer, FederatedIdentity.subject == subject
        )
    )


def _new_federated_person(
    db: Session, provider: OidcProvider, claims: dict[str, Any], now: datetime
) -> Person:
    """A person the provider vouches for: a name and (when no one here has it yet) an e-mail
    from the claims; no role, no clearance; an institution only through an operator's rule."""
    name = _claim_text(claims, provider.name_claim, 200) or f"{provider.display_name} member"
    email = _claim_text(claims, provider.email_claim, 320)
    if email and ("@" not in email or db.scalar(select(Person.id).where(Person.email == email))):
        email = None  # never a key, and never taken from the person who has it
    person = Person(pseudonym=_new_pseudonym(), name=name, email=email, created_at=now)
    db.add(person)
    db.flush()
    record.append(
        db,
        IdentityEvent.PersonCreated,
        actor=SYSTEM,
        subject=f"person/{person.pseudonym}",
        data={"institution": None, "roles": []},
        private=_private_fields(person),
    )
    return person


def _add_identity(
    db: Session,
    provider: OidcProvider,
    claims: dict[str, Any],
    person: Person,
    *,
    actor: Principal,
    now: datetime,
) -> FederatedIdentity:
    identity = FederatedIdentity(
        person_id=person.id,
        provider=provider.name,
        issuer=provider.issuer,
        subject=claims["sub"],
        created_at=now,
        claimed_name=_claim_text(claims, provider.name_claim, 200),
        claimed_email=_claim_text(claims, provider.email_claim, 320),
    )
    db.add(identity)
    db.flush()
    # The link is the person's access: the issuer in clear, the subject only as a
    # commitment (the same subject at other services would tie the pseudonym to them).
    record.append(
        db,
        IdentityEvent.PersonLinked,
        actor=actor,
        subject=f"person/{person.pseudonym}",
        data={"provider": provider.name, "issuer": provider.issuer},
        private={"subject": claims["sub"]},
    )
    return identity


def _place(
    db: Session, provider: OidcProvider, claims: dict[str, Any], person: Person, now: datetime
) -> str | None:
    """Give a person without an institution the one an operator's rule maps their
    affiliation to; else leave the affiliation waiting for an operator (returned). A person
    who has an institution keeps it: a provider never moves anyone."""
    if person.institution_id is not None:
        return None
    value = _affiliation(provider, claims)
    if value is None:
        return None
    mapping = db.scalar(select(AffiliationMapping).where(AffiliationMapping.value == value))
    if mapping is not None:
        _set_institution(db, person, mapping.institution_id, SYSTEM)
        return None
    waiting = db.scalar(
        select(PendingAffiliation.id).where(
            PendingAffiliation.person_id == person.id,
            PendingAffiliation.value == value,
            PendingAffiliation.decision.is_(None),
        )
    )
    if waiting is None:
        db.add(PendingAffiliation(person_id=person.id, provider=provider.name, value=value))
    return value


def _affiliation(provider: OidcProvider, claims: dict[str, Any]) -> str | None:
    """The affiliation a provider asserts: its claim (a home organisation's domain, lower
    case), or the issuer itself when the provider names no claim."""
    if not provider.affiliation_claim:
        return provider.issuer
    return (_claim_text(claims, provider.affiliation_claim, 300) or "").lower() or None


def _set_institution(db: Session, person: Person, institution_id: int, actor: Principal) -> None:
    person.institution_id = institution_id
    record.append(
        db,
        IdentityEvent.PersonUpdated,
        actor=actor,
        subject=f"person/{person.pseudonym}",
        data={"changes": {"institution_id": institution_id}},
    )


def _session_token(db: Session, person: Person, provider: OidcProvider, now: datetime) -> int:
    """A token only the portal session holds (its secret is never shown): read and write,
    and admin for an operator, as the facility's roles say; on the record like any other."""
    scopes = [Scope.READ, Scope.WRITE]
    if any(grant.role == Role.OPERATOR for grant in person.roles):
        scopes.append(Scope.ADMIN)
    request = TokenCreate(name=f"session/{provider.name}", scopes=scopes, expires_in_days=1)
    token, _secret = _new_token(person, request, not_after=now + timedelta(hours=SESSION_HOURS))
    _add_token(db, SYSTEM, person, token)
    return token.id


# What people and operators see --------------------------------------------------------------


@dataclass(frozen=True)
class IdentityRow:
    provider: str
    issuer: str
    created_at: datetime
    last_sign_in_at: datetime | None


@dataclass(frozen=True)
class Account:
    """What the signed-in person sees of their own federation: linked identities, the ORCID
    iD they proved, their institution, and an affiliation still waiting for an operator."""

    identities: list[IdentityRow]
    orcid: str | None
    institution: str | None
    waiting_affiliation: str | None


def account(db: Session, actor: Principal) -> Account:
    """The signed-in person's own linked accounts (nobody else's)."""
    if actor.person_id is None:
        raise Unauthenticated("sign in to see the accounts linked to yours")
    with db.begin():
        person = get_or_404(db, Person, actor.person_id, "person")
        rows = db.scalars(
            select(FederatedIdentity)
            .where(FederatedIdentity.person_id == person.id)
            .order_by(FederatedIdentity.id)
        ).all()
        waiting = db.scalar(
            select(PendingAffiliation.value)
            .where(PendingAffiliation.person_id == person.id, PendingAffiliation.decision.is_(None))
            .limit(1)
        )
        return Account(
            [IdentityRow(r.provider, r.issuer, r.created_at, r.last_sign_in_at) for r in rows],
            person.orcid,
            person.institution.name if person.institution is not None else None,
            waiting,
        )


@dataclass(frozen=True)
class AffiliationRow:
    value: str
    providers: list[str]
    people: int
    first_seen: datetime


def pending_affiliations(
    db: Session, actor: Principal, *, limit: int = 200
) -> list[AffiliationRow]:
    """Affiliations no rule maps, each with how many people wait on it: operators only."""
    authorize(actor, Action.PersonList, Resource.people())
    _operators_only(actor)
    with db.begin():
        rows = db.execute(
            select(
                PendingAffiliation.value,
                func.count(func.distinct(PendingAffiliation.person_id)),
                func.min(PendingAffiliation.created_at),
            )
            .where(PendingAffiliation.decision.is_(None))
            .group_by(PendingAffiliation.value)
            .order_by(func.min(PendingAffiliation.created_at))
            .limit(limit)
        ).all()
        providers: dict[str, set[str]] = {}
        for value, name in db.execute(
            select(PendingAffiliation.value, PendingAffiliation.provider).where(
                PendingAffiliation.decision.is_(None)
            )
        ):
            providers.setdefault(value, set()).add(name)
    return [
        AffiliationRow(value, sorted(providers.get(value, ())), people, first)
        for value, people, first in rows
    ]


def map_affiliation(db: Session, actor: Principal, value: str, institution_id: int) -> int:
    """An operator's rule: this affiliation is this institution, for everyone waiting on it
    (who has no institution yet) and everyone who signs in with it later. Returns how many
    people it placed; each placement is on the record."""
    _operators_only(actor)
    value = _known_value(value)
    with db.begin():
        lock_for_writing(db)
        institution = get_or_404(db, Institution, institution_id, "institution")
        authorize(actor, Action.InstitutionUpdate, _institution_resource(institution))
        if db.scalar(select(AffiliationMapping.id).where(AffiliationMapping.value == value)):
            raise Conflict(f"{value!r} is already mapped to an institution")
        waiting = _waiting(db, value)
        if not waiting:
            raise InvalidInput(f"no one waits on the affiliation {value!r}")
        db.add(
            AffiliationMapping(
                value=value, institution_id=institution.id, created_by=actor.pseudonym
            )
        )
        placed = 0
        for pending in waiting:
            person = get_or_404(db, Person, pending.person_id, "person")
            if person.institution_id is None:
                authorize(actor, Action.PersonManage, Resource.person(person.id))
                _set_institution(db, person, institution.id, actor)
                placed += 1
            _decide(pending, "mapped", actor)
        record.append(
            db,
            IdentityEvent.AffiliationMapped,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"institution/{institution.id}",
            data={"affiliation": value, "institution": institution.id, "placed": placed},
        )
    return placed


def dismiss_affiliation(db: Session, actor: Principal, value: str) -> int:
    """An operator sets an affiliation aside: its people stay without an institution (an
    operator can still place each one by hand). Returns how many waited on it."""
    _operators_only(actor)
    authorize(actor, Action.PersonList, Resource.people())
    value = _known_value(value)
    with db.begin():
        lock_for_writing(db)
        waiting = _waiting(db, value)
        if not waiting:
            raise InvalidInput(f"no one waits on the affiliation {value!r}")
        for pending in waiting:
            _decide(pending, "dismissed", actor)
    return len(waiting)


def _waiting(db: Session, value: str) -> list[PendingAffiliation]:
    return list(
        db.scalars(
            select(PendingAffiliation).where(
                PendingAffiliation.value == value, PendingAffiliation.decision.is_(None)
            )
        )
    )


def _decide(pending: PendingAffiliation, decision: str, actor: Principal) -> None:
    pending.decision = decision
    pending.decided_by = actor.pseudonym
    pending.decided_at = utcnow()


def _operators_only(actor: Principal) -> None:
    if not actor.has_role(Role.OPERATOR):
        raise AccessDenied("only the facility's operators map affiliations to institutions")


def _known_value(value: str) -> str:
    value = value.strip().lower()
    if not value or len(value) > 300:
        raise InvalidInput("give the affiliation exactly as the page shows it")
    return value


# The provider, over HTTP --------------------------------------------------------------------

# authlib's httpx client runs on httpx2 where that is installed (huggingface_hub brings it),
# else on httpx: a provider that does not answer raises either's errors.
try:
    import httpx2

    _TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError, ValueError)
except ImportError:  # pragma: no cover (depends on what else is installed)
    _TRANSPORT_ERRORS = (httpx.HTTPError, ValueError)
# issuer -> (fetched at, discovery document); issuer -> (fetched at, key set)
_DISCOVERY: dict[str, tuple[float, dict[str, Any]]] = {}
_KEYS: dict[str, tuple[float, KeySet]] = {}
# issuer -> until when a provider that did not answer is not asked again
_DOWN: dict[str, float] = {}


def _client(provider: OidcProvider, redirect_uri: str) -> OAuth2Client:
    return OAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret or None,
        scope=" ".join(provider.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=("client_secret_basic" if provider.client_secret else "none"),
        timeout=HTTP_TIMEOUT_SECONDS,
        follow_redirects=False,
    )


def _get_json(provider: OidcProvider, url: str, what: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS, follow_redirects=False)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnavailable(
            f"{provider.display_name} did not answer with its {what} ({type(exc).__name__}): "
            "try again later, or another way to sign in"
        ) from None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{provider.display_name}'s {what} is not a JSON object")
    return document


def _metadata(provider: OidcProvider) -> dict[str, Any]:
    """The provider's discovery document (cached): its issuer must be ours exactly, and its
    endpoints on the same scheme (https, or http on loopback like the issuer)."""
    cached = _DISCOVERY.get(provider.issuer)
    if cached is not None and time.monotonic() - cached[0] < METADATA_SECONDS:
        return cached[1]
    if time.monotonic() < _DOWN.get(provider.issuer, 0.0):
        raise ProviderUnavailable(
            f"{provider.display_name} did not answer moments ago: try again in a minute, or "
            "another way to sign in"
        )
    url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        document = _get_json(provider, url, "discovery document")
    except ProviderUnavailable:
        # Asked again at once, a provider that is down would hold a worker for the whole
        # timeout at every click: it is left alone for a while.
        _DOWN[provider.issuer] = time.monotonic() + DOWN_SECONDS
        raise
    if document.get("issuer") != provider.issuer:
        raise ProviderUnavailable(
            f"{provider.display_name}'s discovery document names another issuer "
            f"({str(document.get('issuer'))[:100]!r}, configured {provider.issuer!r}): "
            "an operator must correct the setting"
        )
    scheme = urlsplit(provider.issuer).scheme
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        endpoint = document.get(key)
        if not isinstance(endpoint, str) or urlsplit(endpoint).scheme != scheme:
            raise ProviderUnavailable(
                f"{provider.display_name}'s discovery document has no usable {key}"
            )
    _DISCOVERY[provider.issuer] = (time.monotonic(), document)
    return document


def _keys(provider: OidcProvider, id_token: str) -> KeySet:
    """The provider's published keys (cached); fetched again at once when the token names a
    key id not among them (the provider rotated), so an unknown key is refused only after
    the provider was asked."""
    cached = _KEYS.get(provider.issuer)
    fresh = cached is not None and time.monotonic() - cached[0] < METADATA_SECONDS
    if cached is not None and fresh and _has_key(cached[1], _kid(id_token)):
        return cached[1]
    document = _get_json(provider, _metadata(provider)["jwks_uri"], "signing keys")
    try:
        keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProviderUnavailable(
            f"{provider.display_name}'s signing keys cannot be read"
        ) from None
    _KEYS[provider.issuer] = (time.monotonic(), keys)
    return keys


def _kid(id_token: str) -> str | None:
    try:
        from joserfc.jws import extract_compact

        kid = extract_compact(id_token.encode()).headers().get("kid")
    except (JoseError, ValueError, TypeError):
        return None
    return kid if isinstance(kid, str) else None


def _has_key(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys.keys)


def forget_providers() -> None:
    """Drop every cached discovery document and key set (tests; a settings reload)."""
    _DISCOVERY.clear()
    _KEYS.clear()
    _DOWN.clear()


# Helpers ------------------------------------------------------------------------------------


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _claim_text(claims: dict[str, Any], name: str, limit: int) -> str | None:
    """A claim that is a short, printable string; anything else counts as absent."""
    value = claims.get(name) if name else None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    if not value or len(value) > limit or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    return value


def _short(text: str) -> str:
    """A provider's error code, safe to show: a word of letters and underscores."""
    word = re.match(r"[a-z0-9_]*", text.lower())
    return (word.group(0) if word else "")[:40] or "no reason given"
