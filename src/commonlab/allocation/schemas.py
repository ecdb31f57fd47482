"""Allocation input and output shapes."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    model_validator,
)

from commonlab.bounded import Int64
from commonlab.identity.schemas import Country, InstitutionKind, Name
from commonlab.schemas import Input

__all__ = [
    "AllocationOut",
    "CallCreate",
    "CallOut",
    "ChargeCreate",
    "ConflictCreate",
    "Criterion",
    "DecisionCreate",
    "ProposalCreate",
    "ProposalOut",
    "ReleasePlan",
    "ReplyCreate",
    "ReservationCreate",
    "ReviewCreate",
    "SubAllocationCreate",
]

POOLS = ("national_pools", "open_calls", "smes_and_public_bodies", "directors_reserve")
Pool = Literal["national_pools", "open_calls", "smes_and_public_bodies", "directors_reserve"]
Hours = Annotated[Decimal, Field(gt=0, le=10**9, max_digits=12, decimal_places=2)]
Accelerator = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")
]


def _non_empty(budget: dict[str, Decimal]) -> dict[str, Decimal]:
    if not budget:
        raise ValueError('give hours for at least one accelerator class, e.g. {"H100": 1000}')
    return budget


Budget = Annotated[dict[Accelerator, Hours], AfterValidator(_non_empty)]
Text = Annotated[str, StringConstraints(max_length=20_000)]


class Criterion(Input):
    criterion: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    weight: Annotated[Decimal, Field(gt=0, le=100)]


class CallCreate(Input):
    title: Name
    description: Text = ""
    pool: Pool
    budget: Budget
    opens_at: datetime
    closes_at: datetime
    eligible_kinds: list[InstitutionKind] | None = None
    eligible_countries: list[Country] | None = None
    rubric: Annotated[list[Criterion], Field(min_length=1, max_length=12)]
    exclude_same_country: bool = False

    @model_validator(mode="after")
    def _window(self) -> CallCreate:
        if self.closes_at <= self.opens_at:
            raise ValueError("closes_at must be after opens_at")
        names = [c.criterion for c in self.rubric]
        if len(set(names)) != len(names):
            raise ValueError("each rubric criterion may appear once")
        return self


class ReleasePlan(Input):
    weights: bool
    data: bool
    code: bool
    licence: Annotated[str, StringConstraints(min_length=1, max_length=64)]


PersonId = Annotated[Int64, Field(ge=1, le=2**53, strict=True)]


class ProposalCreate(Input):
    call_id: PersonId
    # A proposal's institution is its PI's: left out, it is taken from the PI; another is refused.
    institution_id: PersonId | None = None
    title: Name
    abstract: Annotated[str, StringConstraints(min_length=1, max_length=5000)]
    team: Annotated[list[PersonId], Field(max_length=50)] = []
    co_authors: Annotated[list[PersonId], Field(max_length=200)] = []
    requested: Budget
    starts_on: date
    ends_on: date
    level: Annotated[Int64, Field(ge=1, le=4, strict=True)] = 1
    datasets: Annotated[
        list[Annotated[str, StringConstraints(max_length=200)]], Field(max_length=50)
    ] = []
    models: Annotated[
        list[Annotated[str, StringConstraints(max_length=200)]], Field(max_length=50)
    ] = []
    release_plan: ReleasePlan

    @model_validator(mode="after")
    def _period(self) -> ProposalCreate:
        if self.ends_on <= self.starts_on:
            raise ValueError("ends_on must be after starts_on")
        if (self.ends_on - self.starts_on).days > 3 * 366:
            raise ValueError("a proposal covers at most three years")
        return self


class ConflictCreate(Input):
    person_id: PersonId
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ReviewCreate(Input):
    scores: dict[
        Annotated[str, StringConstraints(max_length=60)],
        Annotated[Int64, Field(ge=1, le=5, strict=True)],
    ]
    comment: Text = ""


class ReplyCreate(Input):
    text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


class DecisionCreate(Input):
    award: bool


class SubAllocationCreate(Input):
    title: Name
    budget: Budget


class ReservationCreate(Input):
    accelerator: Accelerator
    hours: Hours
    job: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    on: date | None = None


class ChargeCreate(Input):
    hours: Annotated[Decimal, Field(ge=0, le=10**9, max_digits=12, decimal_places=2)]


class CallOut(BaseModel):
    id: int
    title: str
    description: str
    pool: str
    budget: dict[str, str]
    opens_at: datetime
    closes_at: datetime
    eligible_kinds: list[str] | None
    eligible_countries: list[str] | None
    rubric: list[dict[str, Any]]
    exclude_same_country: bool


class ProposalOut(BaseModel):
    id: int
    call_id: int
    pi_id: int
    institution_id: int
    title: str
    abstract: str
    team: list[int]
    requested: dict[str, str]
    starts_on: date
    ends_on: date
    level: int
    datasets: list[str]
    models: list[str]
    release_plan: dict[str, Any]
    status: str
    score: str | None
    submitted_at: datetime
    reviews: list[dict[str, Any]] = []
    replies: list[str] = []


class AllocationOut(BaseModel):
    id: int
    project: str
    title: str
    parent_id: int | None
    proposal_id: int | None
    pi_id: int
    country: str | None
    pool: str
    budget: dict[str, str]
    starts_on: date
    ends_on: date
    status: str
    used: dict[str, str] = {}
    reserved: dict[str, str] = {}


class TrancheOut(BaseModel):
    """One quarter of one class: hours released, settled (`drawn`), held by open reservations
    (`reserved`) and `remaining` (released less both); `available` on the current quarter
    only: what may be drawn today, carry-over included."""

    quarter: int
    starts_on: date
    ends_on: date
    accelerator: str
    released: str
    drawn: str
    reserved: str
    remaining: str
    current: bool
    available: str | None


class SuggestedReviewerOut(BaseModel):
    person_id: int
    name: str
    open_reviews: int
    done_reviews: int
