"""Governance input and output shapes, including each motion kind's payload."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from commonlab.bounded import Int64
from commonlab.governance.rules import Choice, MotionKind, Outcome, VotingRule
from commonlab.identity.countries import is_country_code
from commonlab.identity.schemas import Country, Name
from commonlab.regulation.document import Percent, Regulation
from commonlab.schemas import Input

__all__ = [
    "AdmitMember",
    "AdoptRegulation",
    "ApproveAllocation",
    "Choice",
    "CouncilCreate",
    "DelegateCreate",
    "FoundingMember",
    "GrantCl4",
    "MemberOut",
    "MotionCreate",
    "MotionKind",
    "MotionOut",
    "Outcome",
    "RegisterWitness",
    "RemoveMember",
    "SetScale",
    "VoteCreate",
    "VotingRule",
]


def _codes(shares: dict[str, Decimal]) -> dict[str, Decimal]:
    bad = sorted(code for code in shares if not is_country_code(code))
    if bad:
        raise ValueError(f"not ISO 3166-1 alpha-2 codes: {', '.join(bad)}")
    return shares


Shares = Annotated[dict[str, Percent], AfterValidator(_codes)]


class FoundingMember(Input):
    code: Country
    name: Name
    contribution: Percent


class CouncilCreate(Input):
    members: Annotated[list[FoundingMember], Field(min_length=1, max_length=200)]


class DelegateCreate(Input):
    person_id: Annotated[Int64, Field(ge=1, le=2**53, strict=True)]


# Motion payloads, one per kind --------------------------------------------------------------


class AdmitMember(Input):
    code: Country
    name: Name
    scale: Shares | None = Field(
        default=None, description="the contribution scale adopted with the admission"
    )


class RemoveMember(Input):
    code: Country
    scale: Shares | None = None


class SetScale(Input):
    shares: Shares


class AdoptRegulation(Input):
    regulation: Regulation


class RegisterWitness(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    verifier_key: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ApproveAllocation(Input):
    allocation_id: Annotated[Int64, Field(ge=1, le=2**53, strict=True)]


class CertifyPartition(Input):
    """Certify a partition for a containment level (or lower its certification)."""

    partition: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    level: Annotated[Int64, Field(ge=1, le=4, strict=True)]


class GrantCl4(Input):
    person_id: Annotated[Int64, Field(ge=1, le=2**53, strict=True)]
    compartments: Annotated[list[str], Field(max_length=20)] = []
    expires_at: datetime


PAYLOADS: dict[MotionKind, type[Input]] = {
    MotionKind.ADMIT_MEMBER: AdmitMember,
    MotionKind.REMOVE_MEMBER: RemoveMember,
    MotionKind.SET_CONTRIBUTION_SCALE: SetScale,
    MotionKind.ADOPT_REGULATION: AdoptRegulation,
    MotionKind.REGISTER_WITNESS: RegisterWitness,
    MotionKind.GRANT_CL4_CLEARANCE: GrantCl4,
    MotionKind.APPROVE_ALLOCATION: ApproveAllocation,
    MotionKind.CERTIFY_PARTITION: CertifyPartition,
}


class MotionCreate(Input):
    kind: MotionKind
    title: Name
    text: Annotated[str, StringConstraints(max_length=20_000)] = ""
    payload: dict[str, Any]
    opens_at: datetime | None = None
    closes_at: datetime


class VoteCreate(Input):
    choice: Choice
    member: Country | None = Field(
        default=None, description="the state you vote for; it must be the one you sit for"
    )


# Outputs ------------------------------------------------------------------------------------


class DelegateOut(BaseModel):
    person_id: int
    name: str
    pseudonym: str


class MemberOut(BaseModel):
    code: str
    name: str
    admitted_at: datetime
    admitted_by_motion: int | None
    removed_at: datetime | None
    contribution: str
    delegates: list[DelegateOut]


class RollCallOut(BaseModel):
    member: str
    choice: Choice
    delegate: str
    cast_at: datetime


class MotionOut(BaseModel):
    id: int
    kind: MotionKind
    title: str
    text: str
    payload: dict[str, Any]
    rule: str
    tabled_by: str
    tabled_for: str
    opens_at: datetime
    closes_at: datetime
    status: str
    result: dict[str, Any] | None
    decided_at: datetime | None
    votes: list[RollCallOut]
