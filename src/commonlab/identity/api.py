"""Identity routes under /api/v1: thin — parse, call one service function, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from sqlalchemy.orm import Session

from commonlab.bounded import Int64
from commonlab.errors import Unauthenticated
from commonlab.http import MAX_ID, CurrentPrincipal, DbSession, Pagination
from commonlab.identity import service
from commonlab.identity.models import ApiToken, ClearanceGrant, Institution, InstitutionKind, Person
from commonlab.identity.schemas import (
    ClearanceCreate,
    ClearanceOut,
    InstitutionCreate,
    InstitutionOut,
    InstitutionUpdate,
    MeOut,
    PersonCreate,
    PersonOut,
    PersonUpdate,
    RoleGrantCreate,
    TokenCreate,
    TokenIssuedOut,
    TokenOut,
)
from commonlab.pagination import Page, paginate
from commonlab.policy.principal import Principal, Role

router = APIRouter(prefix="/api/v1", tags=["identity"])

Id = Annotated[Int64, Path(ge=1, le=MAX_ID)]


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("use the header 'Authorization: Bearer <token>'")
        return value.strip()
    return None


def bearer_principal(request: Request, db: Session) -> Principal | None:
    """The principal of the API token in the Authorization header; None when there is none.
    Installed into the app by `app.py` (`http.install_authenticator`)."""
    token = _bearer_token(request)
    return None if token is None else service.authenticate(db, token)


def institution_out(row: Institution) -> InstitutionOut:
    return InstitutionOut.model_validate(row, from_attributes=True)


def person_out(row: Person) -> PersonOut:
    return PersonOut(
        id=row.id,
        pseudonym=row.pseudonym,
        name=row.name,
        email=row.email,
        orcid=row.orcid,
        institution_id=row.institution_id,
        active=row.active,
        roles=[Role(grant.role) for grant in row.roles],
        created_at=row.created_at,
    )


def token_out(row: ApiToken) -> TokenOut:
    return TokenOut.model_validate(row, from_attributes=True)


def clearance_out(row: ClearanceGrant) -> ClearanceOut:
    return ClearanceOut(
        id=row.id,
        person_id=row.person_id,
        level=row.level,
        compartments=row.compartments,
        granted_by=None if row.granted_by_id is None else str(row.granted_by_id),
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


@router.get("/me", response_model=MeOut, summary="Who the request acts as")
def me(db: DbSession, principal: CurrentPrincipal) -> MeOut:
    if principal.person_id is None:
        return MeOut(authenticated=False, pseudonym=principal.pseudonym)
    person = service.get_person(db, principal, principal.person_id)
    grant = service.current_clearance(db, person.id)
    return MeOut(
        authenticated=True,
        pseudonym=person.pseudonym,
        person=person_out(person),
        scopes=sorted(principal.scopes),
        clearance=clearance_out(grant) if grant else None,
        projects=sorted(principal.projects),
    )


# Institutions


@router.post("/institutions", status_code=status.HTTP_201_CREATED, response_model=InstitutionOut)
def create_institution(
    req: InstitutionCreate, db: DbSession, principal: CurrentPrincipal
) -> InstitutionOut:
    return institution_out(service.create_institution(db, principal, req))


@router.get("/institutions", response_model=Page[InstitutionOut])
def list_institutions(
    db: DbSession,
    principal: CurrentPrincipal,
    page: Pagination,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    kind: InstitutionKind | None = None,
    q: Annotated[str | None, Query(max_length=200, description="name contains")] = None,
) -> Page[InstitutionOut]:
    query = service.institutions_query(principal, country=country, kind=kind, q=q)
    with db.begin():
        return paginate(db, query, Institution.id, page, institution_out)


@router.get("/institutions/{institution_id}", response_model=InstitutionOut)
def get_institution(
    institution_id: Id, db: DbSession, principal: CurrentPrincipal
) -> InstitutionOut:
    return institution_out(service.get_institution(db, principal, institution_id))


@router.patch("/institutions/{institution_id}", response_model=InstitutionOut)
def update_institution(
    institution_id: Id, req: InstitutionUpdate, db: DbSession, principal: CurrentPrincipal
) -> InstitutionOut:
    return institution_out(service.update_institution(db, principal, institution_id, req))


# People


@router.post("/people", status_code=status.HTTP_201_CREATED, response_model=PersonOut)
def create_person(req: PersonCreate, db: DbSession, principal: CurrentPrincipal) -> PersonOut:
    return person_out(service.create_person(db, principal, req))


@router.get("/people", response_model=Page[PersonOut])
def list_people(
    db: DbSession,
    principal: CurrentPrincipal,
    page: Pagination,
    institution_id: Annotated[Int64 | None, Query(ge=1, le=MAX_ID)] = None,
    role: Role | None = None,
    q: Annotated[str | None, Query(max_length=200, description="name contains")] = None,
) -> Page[PersonOut]:
    query = service.people_query(principal, institution_id=institution_id, role=role, q=q)
    with db.begin():
        return paginate(db, query, Person.id, page, person_out)


@router.get("/people/{person_id}", response_model=PersonOut)
def get_person(person_id: Id, db: DbSession, principal: CurrentPrincipal) -> PersonOut:
    return person_out(service.get_person(db, principal, person_id))


@router.patch("/people/{person_id}", response_model=PersonOut)
def update_person(
    person_id: Id, req: PersonUpdate, db: DbSession, principal: CurrentPrincipal
) -> PersonOut:
    return person_out(service.update_person(db, principal, person_id, req))


@router.post("/people/{person_id}/roles", response_model=PersonOut, status_code=201)
def grant_role(
    person_id: Id, req: RoleGrantCreate, db: DbSession, principal: CurrentPrincipal
) -> PersonOut:
    return person_out(service.grant_role(db, principal, person_id, req.role))


@router.delete("/people/{person_id}/roles/{role}", response_model=PersonOut)
def revoke_role(person_id: Id, role: Role, db: DbSession, principal: CurrentPrincipal) -> PersonOut:
    return person_out(service.revoke_role(db, principal, person_id, role))


# Tokens


@router.post("/people/{person_id}/tokens", response_model=TokenIssuedOut, status_code=201)
def issue_token(
    person_id: Id, req: TokenCreate, db: DbSession, principal: CurrentPrincipal
) -> TokenIssuedOut:
    token, secret = service.issue_token(db, principal, person_id, req)
    return TokenIssuedOut(**token_out(token).model_dump(), token=secret)


@router.get("/people/{person_id}/tokens", response_model=Page[TokenOut])
def list_tokens(
    person_id: Id, db: DbSession, principal: CurrentPrincipal, page: Pagination
) -> Page[TokenOut]:
    query = service.tokens_query(db, principal, person_id)
    with db.begin():
        return paginate(db, query, ApiToken.id, page, token_out)


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: Id, db: DbSession, principal: CurrentPrincipal) -> TokenOut:
    return token_out(service.revoke_token(db, principal, token_id))


# Clearances


@router.post("/people/{person_id}/clearances", response_model=ClearanceOut, status_code=201)
def grant_clearance(
    person_id: Id, req: ClearanceCreate, db: DbSession, principal: CurrentPrincipal
) -> ClearanceOut:
    return clearance_out(service.grant_clearance(db, principal, person_id, req))


@router.get("/people/{person_id}/clearances", response_model=Page[ClearanceOut])
def list_clearances(
    person_id: Id, db: DbSession, principal: CurrentPrincipal, page: Pagination
) -> Page[ClearanceOut]:
    query = service.clearances_query(db, principal, person_id)
    with db.begin():
        return paginate(db, query, ClearanceGrant.id, page, clearance_out)


@router.delete("/clearances/{clearance_id}", response_model=ClearanceOut)
def revoke_clearance(clearance_id: Id, db: DbSession, principal: CurrentPrincipal) -> ClearanceOut:
    return clearance_out(service.revoke_clearance(db, principal, clearance_id))
