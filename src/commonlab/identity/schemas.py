"""Identity input and output shapes. Inputs forbid unknown fields and say what is wrong."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
)

from commonlab.bounded import StrictInt64
from commonlab.identity.countries import is_country_code
from commonlab.identity.models import InstitutionKind
from commonlab.policy.principal import Role, Scope
from commonlab.schemas import Input

__all__ = [
    "ClearanceCreate",
    "ClearanceOut",
    "InstitutionCreate",
    "InstitutionOut",
    "InstitutionUpdate",
    "MeOut",
    "PersonCreate",
    "PersonOut",
    "PersonUpdate",
    "RoleGrantCreate",
    "TokenCreate",
    "TokenIssuedOut",
    "TokenOut",
]


def _country(code: str) -> str:
    code = code.upper()
    if not is_country_code(code):
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code (e.g. KE, IT, EE)")
    return code


def _orcid(orcid: str) -> str:
    # ISO 7064 MOD 11-2 check digit, as ORCID documents it.
    if not re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", orcid):
        raise ValueError("an ORCID looks like 0000-0002-1825-0097")
    digits = orcid.replace("-", "")
    total = 0
    for ch in digits[:-1]:
        total = (total + int(ch)) * 2
    check = (12 - total % 11) % 11
    if digits[-1] != ("X" if check == 10 else str(check)):
        raise ValueError(f"{orcid} has a wrong check digit: is it mistyped?")
    return orcid


def _compartment(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
        raise ValueError("a compartment is lower-case letters, digits, '-' or '_', e.g. 'bio'")
    return name


def _printable(text: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ValueError("must not contain control characters (NUL, newlines, tabs)")
    return text


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_printable)]
Country = Annotated[str, StringConstraints(min_length=2, max_length=2), AfterValidator(_country)]
Orcid = Annotated[str, AfterValidator(_orcid)]
Email = Annotated[
    str,
    StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
]
Compartment = Annotated[str, AfterValidator(_compartment)]


class InstitutionCreate(Input):
    name: Name
    country: Country
    kind: InstitutionKind


class InstitutionUpdate(Input):
    name: Name | None = None
    country: Country | None = None
    kind: InstitutionKind | None = None


class InstitutionOut(BaseModel):
    id: int
    name: str
    country: str
    kind: InstitutionKind
    created_at: datetime


class PersonCreate(Input):
    name: Name
    email: Email | None = None
    orcid: Orcid | None = None
    institution_id: StrictInt64 | None = Field(default=None, ge=1)
    roles: list[Role] = Field(default_factory=list, max_length=len(Role))


class PersonUpdate(Input):
    name: Name | None = None
    email: Email | None = None
    orcid: Orcid | None = None
    institution_id: StrictInt64 | None = Field(default=None, ge=1)
    active: bool | None = None


class PersonOut(BaseModel):
    id: int
    pseudonym: str
    name: str
    email: str | None
    orcid: str | None
    institution_id: int | None
    active: bool
    roles: list[Role]
    created_at: datetime


class RoleGrantCreate(Input):
    role: Role


def _not_a_job_token(name: str) -> str:
    if name.startswith(JOB_TOKEN_PREFIX):
        raise ValueError(f"names starting {JOB_TOKEN_PREFIX!r} are the tokens jobs act with")
    return name


# Names the token a facility job acts with: `job/<id>` (see identity.service.job_token).
JOB_TOKEN_PREFIX = "job/"


class TokenCreate(Input):
    name: Annotated[
        str,
        StringConstraints(min_length=1, max_length=100),
        AfterValidator(_printable),
        AfterValidator(_not_a_job_token),
    ] = "cli"
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.READ], min_length=1, max_length=3)
    expires_in_days: Annotated[StrictInt64, Field(ge=1, le=365)] = 90


class TokenOut(BaseModel):
    id: int
    name: str
    key_id: str
    scopes: list[Scope]
    project: str | None = Field(
        default=None, description="confined to this project (a job's token), else none"
    )
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class TokenIssuedOut(TokenOut):
    token: str = Field(description="the secret; shown this once, stored only as a hash")


class ClearanceCreate(Input):
    level: Annotated[StrictInt64, Field(ge=1, le=4, description="containment level 1..4")]
    compartments: list[Compartment] = Field(default_factory=list, max_length=20)
    expires_at: datetime


class ClearanceOut(BaseModel):
    id: int
    person_id: int
    level: int
    compartments: list[str]
    granted_by: str | None
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class MeOut(BaseModel):
    authenticated: bool
    pseudonym: str
    person: PersonOut | None = None
    scopes: list[Scope] = Field(default_factory=list)
    clearance: ClearanceOut | None = None
    projects: list[str] = Field(default_factory=list, description="projects you belong to")
