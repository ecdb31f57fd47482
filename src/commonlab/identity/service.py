"""Identity use cases. Each one authorizes, applies its rules, writes its rows and its record
entry in one transaction, and returns what the caller renders."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from commonlab import record
from commonlab.db import as_utc, get_or_404, lock_for_writing, one_at_a_time, utcnow
from commonlab.errors import AccessDenied, Conflict, InvalidInput, NotFound, Unauthenticated
from commonlab.identity.events import IdentityEvent
from commonlab.identity.models import ApiToken, ClearanceGrant, Institution, Person, RoleGrant
from commonlab.identity.projects import projects_of
from commonlab.identity.schemas import (
    JOB_TOKEN_PREFIX,
    ClearanceCreate,
    InstitutionCreate,
    InstitutionUpdate,
    PersonCreate,
    PersonUpdate,
    TokenCreate,
)
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.levels import Clearance, Level
from commonlab.policy.principal import SYSTEM, Principal, Role, Scope
from commonlab.regulation import service as regulation

__all__ = [
    "TOKEN_PREFIX",
    "authenticate",
    "authenticate_token_id",
    "bootstrap_operator",
    "check_clearance_term",
    "clearances_query",
    "create_institution",
    "create_person",
    "current_clearance",
    "get_institution",
    "get_person",
    "grant_clearance",
    "grant_clearance_in",
    "grant_role",
    "grant_role_in",
    "holds_role",
    "institution",
    "institution_names",
    "institutions_query",
    "issue_token",
    "list_institutions",
    "list_people",
    "live_token_counts",
    "live_tokens",
    "people",
    "people_query",
    "people_with_role",
    "person",
    "recover_operator",
    "revoke_clearance",
    "revoke_role",
    "revoke_token",
    "summary",
    "tokens_query",
    "update_institution",
    "update_person",
]

TOKEN_PREFIX = "clab"


# Institutions -------------------------------------------------------------------------------


def create_institution(db: Session, actor: Principal, req: InstitutionCreate) -> Institution:
    with db.begin():
        authorize(actor, Action.InstitutionCreate, Resource.institution())
        _ensure_unique_institution_name(db, req.name)
        institution = Institution(name=req.name, country=req.country, kind=req.kind)
        db.add(institution)
        db.flush()
        record.append(
            db,
            IdentityEvent.InstitutionCreated,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"institution/{institution.id}",
            data={"name": req.name, "country": req.country, "kind": req.kind},
        )
    return institution


def update_institution(
    db: Session, actor: Principal, institution_id: int, req: InstitutionUpdate
) -> Institution:
    changes = req.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise InvalidInput("nothing to change: give at least one of name, country, kind")
    with db.begin():
        institution = get_or_404(db, Institution, institution_id, "institution")
        authorize(actor, Action.InstitutionUpdate, _institution_resource(institution))
        if "name" in changes and changes["name"] != institution.name:
            _ensure_unique_institution_name(db, changes["name"])
        for field, value in changes.items():
            setattr(institution, field, value)
        record.append(
            db,
            IdentityEvent.InstitutionUpdated,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"institution/{institution.id}",
            data={"changes": {k: str(v) for k, v in changes.items()}},
        )
    return institution


def get_institution(db: Session, actor: Principal, institution_id: int) -> Institution:
    with db.begin():
        institution = get_or_404(db, Institution, institution_id, "institution")
        authorize(actor, Action.InstitutionRead, _institution_resource(institution))
    return institution


def institutions_query(
    actor: Principal, *, country: str | None = None, kind: str | None = None, q: str | None = None
) -> Any:
    """The filtered query behind the institutions list (paginated by the caller)."""
    authorize(actor, Action.InstitutionRead, Resource.institution())
    query = select(Institution)
    if country:
        query = query.where(Institution.country == country.upper())
    if kind:
        query = query.where(Institution.kind == kind)
    if q:
        query = query.where(func.lower(Institution.name).contains(q.lower()))
    return query


def _ensure_unique_institution_name(db: Session, name: str) -> None:
    if db.scalar(select(exists().where(func.lower(Institution.name) == name.lower()))):
        raise Conflict(f"an institution named {name!r} already exists")


def _institution_resource(institution: Institution) -> Resource:
    return Resource.institution(institution.id)


# People -------------------------------------------------------------------------------------


def create_person(db: Session, actor: Principal, req: PersonCreate) -> Person:
    with db.begin():
        authorize(actor, Action.PersonCreate, Resource.people())
        person = _new_person(db, req)
        record.append(
            db,
            IdentityEvent.PersonCreated,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"person/{person.pseudonym}",
            data={
                "institution": person.institution_id,
                "roles": sorted(str(role) for role in req.roles),
            },
            private=_private_fields(person),
        )
    return person


def _new_person(db: Session, req: PersonCreate) -> Person:
    if req.institution_id is not None:
        get_or_404(db, Institution, req.institution_id, "institution")
    _ensure_unique_contact(db, email=req.email, orcid=req.orcid)
    person = Person(
        pseudonym=_new_pseudonym(),
        name=req.name,
        email=req.email,
        orcid=req.orcid,
        institution_id=req.institution_id,
    )
    db.add(person)
    db.flush()
    for role in sorted(set(req.roles)):
        db.add(RoleGrant(person_id=person.id, role=role, granted_by=SYSTEM.pseudonym))
    db.flush()
    return person


def update_person(db: Session, actor: Principal, person_id: int, req: PersonUpdate) -> Person:
    """Change an account: the person themself or an operator; what others rely on
    (`_managed_changes`) only another operator, on the record; never the last operator."""
    changes = req.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to change: give at least one field")
    if cleared := [f for f in ("name", "active") if f in changes and changes[f] is None]:
        raise InvalidInput(f"{', '.join(cleared)} cannot be removed: give a value")
    with db.begin(), _keeping_an_operator(db):
        person = get_or_404(db, Person, person_id, "person")
        authorize(actor, Action.PersonUpdate, Resource.person(person.id))
        if managed := _managed_changes(person, changes):
            # Others rely on these (conflicts of interest, the council's pages): an operator
            # makes the change, never on themself, and the record says who.
            authorize(actor, Action.PersonManage, Resource.person(person.id))
        if changes.get("institution_id") is not None:
            get_or_404(db, Institution, changes["institution_id"], "institution")
        _ensure_unique_contact(
            db, email=changes.get("email"), orcid=changes.get("orcid"), except_id=person.id
        )
        for field, value in changes.items():
            setattr(person, field, value)
        public = {k: v for k, v in changes.items() if k in {"institution_id", "active"}}
        if "name" in managed:
            public["name"] = changes["name"]  # a public role's holder is named on the record
        private = {k: v for k, v in changes.items() if k in {"name", "email", "orcid"}}
        record.append(
            db,
            IdentityEvent.PersonUpdated,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"person/{person.pseudonym}",
            data={"changes": public},
            private={k: v for k, v in private.items() if k not in public},
        )
    return person


def _managed_changes(person: Person, changes: dict[str, Any]) -> set[str]:
    """The fields of `changes` only an operator may change on this person: the institution
    and activation always, the name while the person holds a public role."""
    managed = {"institution_id", "active"}
    if any(grant.role in record.PUBLIC_ROLES for grant in person.roles):
        managed.add("name")
    return {f for f in managed & changes.keys() if changes[f] != getattr(person, f)}


def get_person(db: Session, actor: Principal, person_id: int) -> Person:
    with db.begin():
        person = get_or_404(db, Person, person_id, "person")
        authorize(actor, Action.PersonRead, Resource.person(person.id))
    return person


def people_query(
    actor: Principal,
    *,
    institution_id: int | None = None,
    role: Role | None = None,
    q: str | None = None,
) -> Any:
    authorize(actor, Action.PersonList, Resource.people())
    query = select(Person)
    if institution_id is not None:
        query = query.where(Person.institution_id == institution_id)
    if role is not None:
        query = query.where(
            exists().where(RoleGrant.person_id == Person.id, RoleGrant.role == role)
        )
    if q:
        query = query.where(func.lower(Person.name).contains(q.lower()))
    return query


def _ensure_unique_contact(
    db: Session, *, email: str | None, orcid: str | None, except_id: int | None = None
) -> None:
    for column, value, label in ((Person.email, email, "e-mail"), (Person.orcid, orcid, "ORCID")):
        if value is None:
            continue
        clash = db.scalar(select(Person.id).where(column == value))
        if clash is not None and clash != except_id:
            raise Conflict(f"another person already has this {label}")


def _private_fields(person: Person) -> dict[str, Any]:
    fields = {"name": person.name, "email": person.email, "orcid": person.orcid}
    return {k: v for k, v in fields.items() if v is not None}


def _new_pseudonym() -> str:
    return "p-" + secrets.token_hex(8)


# Roles --------------------------------------------------------------------------------------


def grant_role(db: Session, actor: Principal, person_id: int, role: Role) -> Person:
    with db.begin():
        person = get_or_404(db, Person, person_id, "person")
        authorize(actor, Action.RoleGrant, Resource.person(person.id))
        if any(grant.role == role for grant in person.roles):
            raise Conflict(f"{person.pseudonym} already has the role {role}")
        _add_role(db, actor, person, role)
    return person


def grant_role_in(db: Session, actor: Principal, person: Person, role: Role) -> None:
    """Grant `role` inside the caller's transaction (appointing a delegate grants the
    delegate role in the same step); a role already held is left as it is."""
    authorize(actor, Action.RoleGrant, Resource.person(person.id))
    if not any(grant.role == role for grant in person.roles):
        _add_role(db, actor, person, role)


def _add_role(db: Session, actor: Principal, person: Person, role: Role) -> None:
    person.roles.append(RoleGrant(role=role, granted_by=actor.pseudonym))
    record.append(
        db,
        IdentityEvent.RoleGranted,
        actor=actor,
        as_role=Role.OPERATOR,
        subject=f"person/{person.pseudonym}",
        data={"role": role, **_public_name(person, role)},
    )


def revoke_role(db: Session, actor: Principal, person_id: int, role: Role) -> Person:
    with db.begin(), _keeping_an_operator(db):
        person = get_or_404(db, Person, person_id, "person")
        authorize(actor, Action.RoleRevoke, Resource.person(person.id))
        grant = next((g for g in person.roles if g.role == role), None)
        if grant is None:
            raise NotFound(f"{person.pseudonym} does not have the role {role}")
        person.roles.remove(grant)
        record.append(
            db,
            IdentityEvent.RoleRevoked,
            actor=actor,
            as_role=Role.OPERATOR,
            subject=f"person/{person.pseudonym}",
            data={"role": role},
        )
    return person


def _public_name(person: Person, role: Role) -> dict[str, str]:
    # The public is entitled to know who holds a public role (DESIGN.md).
    return {"name": person.name} if role in record.PUBLIC_ROLES else {}


def _operator_count(db: Session) -> int:
    return db.scalar(select(func.count()).where(RoleGrant.role == Role.OPERATOR)) or 0


@contextmanager
def _keeping_an_operator(db: Session) -> Iterator[None]:
    """Around a use case that could take away the last working operator credential: refuse
    it (Conflict; the transaction rolls back) if it would.

    A working operator is an active person holding the operator role with an unexpired,
    unrevoked admin token of their own: without one nobody can create accounts, grant
    roles or issue tokens any more. Every path that can take one away (deactivating,
    revoking the role, revoking a token) runs inside this, entered first in its
    transaction: it takes SQLite's write lock and locks the operators' role rows on
    PostgreSQL, so two such changes at once are counted one after the other."""
    lock_for_writing(db)
    db.execute(select(RoleGrant.id).where(RoleGrant.role == Role.OPERATOR).with_for_update())
    before = _working_operators(db)
    yield
    db.flush()
    if before and not _working_operators(db):
        raise Conflict(
            "this would leave no working operator (an active operator with a valid admin "
            "token): give someone else the operator role and an admin token first, or run "
            "`commonlab admin recover` on the facility's machine"
        )


def _working_operators(db: Session) -> set[int]:
    """The people who can act as operators right now (see `_keeping_an_operator`)."""
    rows = db.execute(
        select(ApiToken.person_id, ApiToken.scopes)
        .join(Person, Person.id == ApiToken.person_id)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(
            RoleGrant.role == Role.OPERATOR,
            Person.active.is_(True),
            ApiToken.revoked_at.is_(None),
            ApiToken.project.is_(None),
            ApiToken.expires_at > utcnow(),
        )
    )
    return {person_id for person_id, scopes in rows if Scope.ADMIN.value in scopes}


# Tokens -------------------------------------------------------------------------------------


def issue_token(
    db: Session, actor: Principal, person_id: int, req: TokenCreate
) -> tuple[ApiToken, str]:
    """Issue a token; returns the row and the secret, which is never stored or shown again.

    A token never makes a token broader than itself: the new one has no scope the issuing
    token lacks, and expires no later than it (a job's token makes none: policy)."""
    with db.begin():
        person = get_or_404(db, Person, person_id, "person")
        authorize(actor, Action.TokenIssue, Resource.token(person.id))
        if not person.active:
            raise Conflict(f"{person.pseudonym} is deactivated: reactivate the account first")
        if stronger := [s for s in req.scopes if not actor.is_system and not actor.has_scope(s)]:
            raise AccessDenied(
                f"this token cannot issue scope {', '.join(stronger)}: a token never issues "
                "one broader than itself; use a token that has it"
            )
        token, secret = _new_token(person, req, not_after=actor.token_expires_at)
        _add_token(db, actor, person, token)
    return token, secret


def _add_token(
    db: Session, actor: Principal, person: Person, token: ApiToken, **context: str
) -> None:
    """Store a new token and put its issue on the record (what it may do and until when,
    never its secret); `context` says what it was issued for."""
    db.add(token)
    db.flush()
    record.append(
        db,
        IdentityEvent.TokenIssued,
        actor=actor,
        subject=f"token/{token.key_id}",
        data={
            "holder": person.pseudonym,
            "scopes": sorted(token.scopes),
            "expires_at": record.format_time(token.expires_at),
            **context,
        },
    )


def _new_token(
    person: Person, req: TokenCreate, *, not_after: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token row and its secret; it expires after the days asked for, but never
    after `not_after` (the expiry of the token that issued it)."""
    expires_at = utcnow() + timedelta(days=req.expires_in_days)
    if not_after is not None:
        expires_at = min(expires_at, as_utc(not_after))
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ApiToken(
        person_id=person.id,
        name=req.name,
        key_id=key_id,
        secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
        scopes=sorted({str(scope) for scope in req.scopes}),
        expires_at=expires_at,
    )
    return token, f"{TOKEN_PREFIX}_{key_id}_{secret}"


def job_token(
    db: Session,
    person_id: int,
    *,
    job_key: str,
    project: str,
    level: int,
    expires_at: datetime,
    key: bytes,
) -> str:
    """The bearer token a facility job acts with: its submitter's, read and write, confined
    to the job's project (no other project's membership, none of the submitter's roles),
    reading at most at the job's containment `level`, revoked when the job ends
    (`revoke_job_token`). Inside the caller's transaction.

    One row per job, named by the job; its secret is derived from the facility's key and
    the row's key id, so a handover retried after an executor outage hands the job the same
    token again (only its SHA-256 is stored, as for every token)."""
    token = db.scalar(
        select(ApiToken).where(
            ApiToken.name == job_key,
            ApiToken.person_id == person_id,
            ApiToken.revoked_at.is_(None),
        )
    )
    if token is None:
        person = db.get_one(Person, person_id)
        key_id = secrets.token_hex(6)
        token = ApiToken(
            person_id=person_id,
            name=job_key,
            key_id=key_id,
            secret_sha256=hashlib.sha256(_job_secret(key, key_id).encode()).hexdigest(),
            scopes=sorted([Scope.READ.value, Scope.WRITE.value]),
            project=project,
            level=int(Level(level)),
            expires_at=expires_at,
        )
        _add_token(
            db, SYSTEM, person, token, job=job_key, project=project, level=Level(level).label
        )
    return f"{TOKEN_PREFIX}_{token.key_id}_{_job_secret(key, token.key_id)}"


def revoke_job_token(db: Session, job_key: str) -> None:
    """The job has ended: the token it acted with stops working (caller's transaction)."""
    for token in db.scalars(
        select(ApiToken).where(ApiToken.name == job_key, ApiToken.revoked_at.is_(None))
    ):
        _revoke(db, SYSTEM, token, job=job_key)


def _job_secret(key: bytes, key_id: str) -> str:
    mac = hmac.new(key, f"commonlab job token {key_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def tokens_query(db: Session, actor: Principal, person_id: int) -> Any:
    """The query behind a person's token list (paginated by the caller)."""
    with db.begin():
        person = get_or_404(db, Person, person_id, "person")
        authorize(actor, Action.TokenList, Resource.token(person.id))
    return select(ApiToken).where(ApiToken.person_id == person.id)


def revoke_token(db: Session, actor: Principal, token_id: int) -> ApiToken:
    with db.begin(), _keeping_an_operator(db):
        token = get_or_404(db, ApiToken, token_id, "token")
        authorize(actor, Action.TokenRevoke, Resource.token(token.person_id, token.id))
        if token.revoked_at is not None:
            raise Conflict(f"token {token.key_id} was already revoked")
        _revoke(db, actor, token)
    return token


def _revoke(db: Session, actor: Principal, token: ApiToken, **context: str) -> None:
    """Stop a token working and put that on the record; `context` says why."""
    token.revoked_at = utcnow()
    record.append(
        db,
        IdentityEvent.TokenRevoked,
        actor=actor,
        subject=f"token/{token.key_id}",
        data={"holder": token.person.pseudonym, **context},
    )


def authenticate(db: Session, bearer: str, *, now: datetime | None = None) -> Principal:
    """The principal behind a token, or Unauthenticated saying what is wrong with it.

    A token works until the instant it expires (at `expires_at` it no longer does), and
    only while its holder's account is active. A job's token is confined: its project
    only, none of its holder's offices, and its holder's clearance capped at the job's
    level (never raised)."""
    now = now or utcnow()
    parts = bearer.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        raise Unauthenticated("malformed token: commonlab tokens look like clab_<id>_<secret>")
    _, key_id, secret = parts
    with db.begin():
        rows = _token_rows(db, ApiToken.key_id == key_id)
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if not rows or not hmac.compare_digest(digest, rows[0].secret_sha256):
            raise Unauthenticated("unknown token: check it was copied whole, or issue a new one")
        return _principal_of(db, rows, now)


def authenticate_token_id(db: Session, token_id: int, *, now: datetime | None = None) -> Principal:
    """The principal behind a token proven earlier (a portal session keeps the token's id,
    never its secret), checked as `authenticate` checks it: revoked, expired, deactivated."""
    now = now or utcnow()
    with db.begin():
        rows = _token_rows(db, ApiToken.id == token_id)
        if not rows:
            raise Unauthenticated("the token of this sign-in no longer exists: sign in again")
        return _principal_of(db, rows, now)


def _token_rows(db: Session, which: Any) -> list[Any]:
    """The token, its holder, the holder's current clearance (`current_clearance`'s: the
    newest unrevoked grant) and one role per row (none: one row, role None), in one query:
    every API request authenticates, and five ORM loads were most of what a read cost."""
    current = (
        select(func.max(ClearanceGrant.id))
        .where(ClearanceGrant.person_id == Person.id, ClearanceGrant.revoked_at.is_(None))
        .correlate(Person)
        .scalar_subquery()
    )
    query = (
        select(
            ApiToken.id,
            ApiToken.key_id,
            ApiToken.secret_sha256,
            ApiToken.name,
            ApiToken.scopes,
            ApiToken.project,
            ApiToken.level,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            Person.id.label("person_id"),
            Person.pseudonym,
            Person.name.label("person_name"),
            Person.active,
            Person.institution_id,
            ClearanceGrant.level.label("clearance_level"),
            ClearanceGrant.expires_at.label("clearance_expires_at"),
            ClearanceGrant.compartments.label("clearance_compartments"),
            RoleGrant.role,
        )
        .join(Person, Person.id == ApiToken.person_id)
        .outerjoin(ClearanceGrant, ClearanceGrant.id == current)
        .outerjoin(RoleGrant, RoleGrant.person_id == Person.id)
        .where(which)
    )
    return list(db.execute(query))


def _principal_of(db: Session, rows: list[Any], now: datetime) -> Principal:
    """The principal a found token stands for (its rows from `_token_rows`), or
    Unauthenticated saying why it does not."""
    token = rows[0]
    if token.revoked_at is not None:
        raise Unauthenticated(f"token {token.key_id} was revoked: issue a new one")
    if token.expires_at <= now:
        raise Unauthenticated(
            f"token {token.key_id} expired on {token.expires_at:%Y-%m-%d}: issue a new one"
        )
    if not token.active:
        raise Unauthenticated("this account is deactivated: ask an operator")
    roles = frozenset(Role(row.role) for row in rows if row.role is not None)
    projects = projects_of(db, token.person_id)
    clearance = None
    if token.clearance_level is not None:
        clearance = Clearance(
            level=Level(token.clearance_level),
            expires_at=token.clearance_expires_at,
            compartments=frozenset(token.clearance_compartments),
        )
    job_id = None
    if token.project is not None:
        job_id = _job_of(token)
        roles, projects = frozenset(), projects & {token.project}
        clearance = _capped(clearance, Level(token.level or Level.CL1))
    return Principal(
        pseudonym=token.pseudonym,
        person_id=token.person_id,
        name=token.person_name,
        roles=roles,
        scopes=frozenset(Scope(scope) for scope in token.scopes),
        clearance=clearance,
        institution_id=token.institution_id,
        token_id=token.id,
        token_expires_at=token.expires_at,
        projects=projects,
        job_id=job_id,
    )


def _job_of(token: Any) -> int:
    """The job a confined token belongs to, from its name (`job/<id>`, which no person's
    token may take); a confined token naming no job is refused, not trusted."""
    job = token.name.removeprefix(JOB_TOKEN_PREFIX)
    if not token.name.startswith(JOB_TOKEN_PREFIX) or not job.isdecimal():
        raise Unauthenticated(f"token {token.key_id} is confined but belongs to no job")
    return int(job)


def _capped(clearance: Clearance | None, level: Level) -> Clearance | None:
    """`clearance`, reading no higher than `level`; no clearance stays none."""
    if clearance is None or clearance.level <= level:
        return clearance
    return replace(clearance, level=level)


# Clearances ---------------------------------------------------------------------------------


def grant_clearance(
    db: Session, actor: Principal, person_id: int, req: ClearanceCreate
) -> ClearanceGrant:
    with db.begin():
        return grant_clearance_in(db, actor, person_id, req)


def grant_clearance_in(
    db: Session, actor: Principal, person_id: int, req: ClearanceCreate
) -> ClearanceGrant:
    """Grant a clearance inside the caller's transaction.

    A passed council motion acting as `actor` (`policy.principal.motion_authority`: the
    council's CL-4 grants) is the council's approval a CL-4 grant needs; the entry names it."""
    now = utcnow()
    expires_at = as_utc(req.expires_at)
    if expires_at <= now:
        raise InvalidInput("expires_at is in the past: a clearance must expire in the future")
    level = Level(req.level)
    person = get_or_404(db, Person, person_id, "person")
    in_force = regulation.in_force(db)
    rules = in_force.regulation.containment.for_level(level)
    decision = authorize(
        actor,
        Action.ClearanceGrant,
        Resource.clearance(person.id, level, frozenset(req.compartments)),
        {
            "council_approved": actor.is_motion,
            "requested_days": math.ceil((expires_at - now).total_seconds() / 86400),
            "max_clearance_days": rules.max_clearance_days,
        },
    )
    previous = current_clearance(db, person.id)
    if previous is not None:
        previous.revoked_at = now
    grant = ClearanceGrant(
        person_id=person.id,
        level=int(level),
        compartments=sorted(set(req.compartments)),
        granted_by_id=actor.person_id,
        expires_at=expires_at,
    )
    db.add(grant)
    db.flush()
    record.append(
        db,
        IdentityEvent.ClearanceGranted,
        actor=actor,
        as_role=Role.SAFETY_OFFICER if actor.has_role(Role.SAFETY_OFFICER) else Role.OPERATOR,
        subject=f"clearance/{grant.id}",
        data={
            "holder": person.pseudonym,
            "level": level.label,
            "expires_at": record.format_time(expires_at),
            "supersedes": previous.id if previous else None,
            # The deciding policy set (every entry's envelope names it too; a clearance
            # entry has carried it in its data from the start).
            "policy_set": decision.policy_hash,
            "regulation": {"version": in_force.version, "sha256": in_force.sha256},
            **({"motion": actor.motion_id} if actor.is_motion else {}),
        },
        # Compartments name contained programmes: a commitment only (record/fields.py).
        private={"compartments": grant.compartments},
    )
    return grant


def check_clearance_term(db: Session, person_id: int, level: Level, expires_at: datetime) -> None:
    """Whether the person exists and a clearance at `level` until `expires_at` is within the
    regulation in force (a council motion granting CL-4 is checked when it is tabled)."""
    get_or_404(db, Person, person_id, "person")
    limit = regulation.in_force(db).regulation.containment.for_level(level).max_clearance_days
    if as_utc(expires_at) - utcnow() > timedelta(days=limit):
        raise InvalidInput(
            f"a {level.label} clearance may last at most {limit} days under the regulation"
        )


def revoke_clearance(db: Session, actor: Principal, clearance_id: int) -> ClearanceGrant:
    with db.begin():
        grant = get_or_404(db, ClearanceGrant, clearance_id, "clearance")
        authorize(
            actor, Action.ClearanceRevoke, Resource.clearance(grant.person_id, Level(grant.level))
        )
        if grant.revoked_at is not None:
            raise Conflict(f"clearance {grant.id} was already revoked")
        grant.revoked_at = utcnow()
        record.append(
            db,
            IdentityEvent.ClearanceRevoked,
            actor=actor,
            as_role=Role.SAFETY_OFFICER if actor.has_role(Role.SAFETY_OFFICER) else Role.OPERATOR,
            subject=f"clearance/{grant.id}",
            data={"holder": grant.person.pseudonym, "level": Level(grant.level).label},
        )
    return grant


def clearances_query(db: Session, actor: Principal, person_id: int) -> Any:
    """The query behind a person's clearances, current and past (paginated by the caller)."""
    with db.begin():
        person = get_or_404(db, Person, person_id, "person")
        authorize(actor, Action.ClearanceRead, Resource.clearance(person.id))
    return select(ClearanceGrant).where(ClearanceGrant.person_id == person.id)


def current_clearance(db: Session, person_id: int) -> ClearanceGrant | None:
    """The person's unrevoked clearance (expired or not: expiry is the policy's business)."""
    return db.scalar(
        select(ClearanceGrant)
        .where(ClearanceGrant.person_id == person_id, ClearanceGrant.revoked_at.is_(None))
        .order_by(ClearanceGrant.id.desc())
        .limit(1)
    )


# Bootstrap ----------------------------------------------------------------------------------


def bootstrap_operator(db: Session, *, name: str = "Facility operator") -> str | None:
    """On first start, create an operator and return its admin token; None if one exists
    (also when another host started at the same moment created it)."""
    with db.begin():
        one_at_a_time(db, "clbootst")
        if _operator_count(db) > 0:
            return None
        person = _new_operator(db, name, bootstrap=True)
        token, secret = _new_token(person, _OPERATOR_TOKEN)
        _add_token(db, SYSTEM, person, token)
    return secret


def recover_operator(
    db: Session, *, person_id: int | None = None, name: str = "Facility operator"
) -> tuple[Person, str]:
    """`commonlab admin recover`: a new admin token for an operator, when no working one is
    left. Whoever can open the facility's home on its machine already holds its keys and
    database, so this acts as the system; each change is on the record, the token's issue
    marked as a recovery.

    The token goes to `person_id` (reactivated and made an operator if need be), else to
    the first active operator, else to the first operator (reactivated), else to a new
    operator named `name`."""
    with db.begin():
        person = _operator_to_recover(db, person_id, name)
        subject = f"person/{person.pseudonym}"
        if not person.active:
            person.active = True
            record.append(
                db,
                IdentityEvent.PersonUpdated,
                actor=SYSTEM,
                subject=subject,
                data={"changes": {"active": True}},
            )
        if not any(grant.role == Role.OPERATOR for grant in person.roles):
            person.roles.append(RoleGrant(role=Role.OPERATOR, granted_by=SYSTEM.pseudonym))
            record.append(
                db,
                IdentityEvent.RoleGranted,
                actor=SYSTEM,
                subject=subject,
                data={"role": Role.OPERATOR, "name": person.name},
            )
        token, secret = _new_token(person, _OPERATOR_TOKEN.model_copy(update={"name": "recovery"}))
        _add_token(db, SYSTEM, person, token, recovery="commonlab admin recover")
    return person, secret


_OPERATOR_TOKEN = TokenCreate(name="bootstrap", scopes=list(Scope), expires_in_days=365)


def _operator_to_recover(db: Session, person_id: int | None, name: str) -> Person:
    if person_id is not None:
        return get_or_404(db, Person, person_id, "person")
    operators = (
        select(Person)
        .join(RoleGrant, RoleGrant.person_id == Person.id)
        .where(RoleGrant.role == Role.OPERATOR)
        .order_by(Person.active.desc(), Person.id)
        .limit(1)
    )
    return db.scalar(operators) or _new_operator(db, name, recovery=True)


def _new_operator(db: Session, name: str, **context: bool) -> Person:
    """Create an operator as the system, on the record; `context` says why."""
    person = _new_person(db, PersonCreate(name=name, roles=[Role.OPERATOR]))
    record.append(
        db,
        IdentityEvent.PersonCreated,
        actor=SYSTEM,
        subject=f"person/{person.pseudonym}",
        data={"institution": None, "roles": [Role.OPERATOR], **context},
        private=_private_fields(person),
    )
    return person


# Helpers ------------------------------------------------------------------------------------


# Public summary ------------------------------------------------------------------------------


def summary(db: Session) -> dict[str, Any]:
    """Counts the public may see: institutions by kind and country, people by public role."""
    with db.begin():
        by_kind = dict(
            db.execute(select(Institution.kind, func.count()).group_by(Institution.kind)).all()
        )
        countries = db.scalar(select(func.count(func.distinct(Institution.country)))) or 0
        people = db.scalar(select(func.count()).select_from(Person)) or 0
        by_role = dict(
            db.execute(select(RoleGrant.role, func.count()).group_by(RoleGrant.role)).all()
        )
    return {
        "institutions": sum(by_kind.values()),
        "institutions_by_kind": by_kind,
        "countries": countries,
        "people": people,
        "people_by_role": by_role,
    }


def live_token_counts(db: Session, actor: Principal) -> dict[str, int]:
    """How many tokens work now (neither revoked nor expired): people's, and running jobs'
    (a job's token names its project). Counts only, for those who list people."""
    authorize(actor, Action.PersonList, Resource.people())
    personal = ApiToken.project.is_(None)
    with db.begin():
        rows = db.execute(
            select(personal, func.count())
            .where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())
            .group_by(personal)
        ).all()
    counts = {"people": 0, "jobs": 0}
    for is_personal, count in rows:
        counts["people" if is_personal else "jobs"] += count
    return counts


# Reads for other domains ----------------------------------------------------------------------
# In the caller's transaction and without an authorization of their own: the calling use case
# has authorized what it reads them for. Other domains read people and institutions only here.


def person(db: Session, person_id: int) -> Person:
    """The person with this id, or NotFound."""
    return get_or_404(db, Person, person_id, "person")


def people(db: Session, person_ids: Collection[int]) -> dict[int, Person]:
    """The people with these ids, by id (an id with no person is left out)."""
    if not person_ids:
        return {}
    return {p.id: p for p in db.scalars(select(Person).where(Person.id.in_(person_ids)))}


def institution(db: Session, institution_id: int) -> Institution:
    """The institution with this id, or NotFound."""
    return get_or_404(db, Institution, institution_id, "institution")


def institution_names(db: Session) -> dict[int, str]:
    """Every institution's name by id."""
    return dict(db.execute(select(Institution.id, Institution.name)).all())


def holds_role(person: Person, role: Role) -> bool:
    """Whether the person holds `role` now."""
    return any(grant.role == role for grant in person.roles)


def people_with_role(db: Session, role: Role) -> list[Person]:
    """Everyone who holds `role`, by id."""
    return list(
        db.scalars(select(Person).join(RoleGrant).where(RoleGrant.role == role).order_by(Person.id))
    )


# Reads for the portal -------------------------------------------------------------------------


def list_people(db: Session, actor: Principal, *, limit: int) -> list[Person]:
    """The first `limit` people by name, with their roles, for those who may list people."""
    query = people_query(actor).order_by(Person.name).limit(limit)
    with db.begin():
        found = list(db.scalars(query))
        for listed in found:
            _ = listed.roles  # loaded while the session is open
    return found


def list_institutions(
    db: Session, actor: Principal, *, newest_first: bool = False, limit: int | None = None
) -> list[Institution]:
    """Institutions by name (or newest first), at most `limit`, for those who may read them."""
    order = Institution.id.desc() if newest_first else Institution.name
    query = institutions_query(actor).order_by(order).limit(limit)
    with db.begin():
        return list(db.scalars(query))


def live_tokens(db: Session, actor: Principal, person_id: int, *, limit: int) -> list[ApiToken]:
    """A person's own tokens that work now (neither revoked nor expired; their jobs' tokens
    left out), newest first, at most `limit`: for themself or an operator to revoke."""
    query = (
        tokens_query(db, actor, person_id)
        .where(
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at > utcnow(),
            ApiToken.project.is_(None),
        )
        .order_by(ApiToken.id.desc())
        .limit(limit)
    )
    with db.begin():
        return list(db.scalars(query))
