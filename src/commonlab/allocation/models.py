"""Allocation tables: calls, proposals, reviews and declared conflicts, replies,
allocations (with sub-allocations) and the append-only usage ledger."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = [
    "Allocation",
    "Balance",
    "Call",
    "Charge",
    "ConflictOfInterest",
    "ProjectMember",
    "Proposal",
    "Reply",
    "Review",
]

Hours = Numeric(14, 2)


class Call(Base):
    __tablename__ = "allocation_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    pool: Mapped[str] = mapped_column(String(40))
    budget: Mapped[dict[str, str]] = mapped_column(JSON)  # accelerator class → hours
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    eligible_kinds: Mapped[list[str] | None] = mapped_column(JSON)
    eligible_countries: Mapped[list[str] | None] = mapped_column(JSON)
    rubric: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    exclude_same_country: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Proposal(Base):
    __tablename__ = "allocation_proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("allocation_calls.id"), index=True)
    pi_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("identity_institutions.id"))
    title: Mapped[str] = mapped_column(String(200))
    abstract: Mapped[str] = mapped_column(Text)
    team: Mapped[list[int]] = mapped_column(JSON)
    co_authors: Mapped[list[int]] = mapped_column(JSON)
    requested: Mapped[dict[str, str]] = mapped_column(JSON)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    level: Mapped[int] = mapped_column(Integer)
    datasets: Mapped[list[str]] = mapped_column(JSON)
    models: Mapped[list[str]] = mapped_column(JSON)
    release_plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="submitted", index=True)
    score: Mapped[str | None] = mapped_column(String(12))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    reviews: Mapped[list[Review]] = relationship(back_populates="proposal", order_by="Review.id")
    replies: Mapped[list[Reply]] = relationship(order_by="Reply.id")


class Review(Base):
    __tablename__ = "allocation_reviews"
    __table_args__ = (UniqueConstraint("proposal_id", "reviewer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("allocation_proposals.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    scores: Mapped[dict[str, int] | None] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    proposal: Mapped[Proposal] = relationship(back_populates="reviews")


class Reply(Base):
    """The PI's answer to the reviews (the right to reply)."""

    __tablename__ = "allocation_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("allocation_proposals.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConflictOfInterest(Base):
    """A conflict a reviewer declared with a person (a PI or team member)."""

    __tablename__ = "allocation_conflicts"
    __table_args__ = (UniqueConstraint("reviewer_id", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"))
    reason: Mapped[str] = mapped_column(String(500))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Allocation(Base):
    """A budget of accelerator-hours per class over a period; a sub-allocation has a parent."""

    __tablename__ = "allocation_allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("allocation_proposals.id"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("allocation_allocations.id"), index=True
    )
    project: Mapped[str] = mapped_column(String(40), index=True)
    title: Mapped[str] = mapped_column(String(200))
    pi_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("identity_institutions.id"))
    country: Mapped[str | None] = mapped_column(String(2), index=True)
    pool: Mapped[str] = mapped_column(String(40))
    budget: Mapped[dict[str, str]] = mapped_column(JSON)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Charge(Base):
    """One line of the append-only usage ledger.

    `reserve` holds hours for a job at admission; `settle` charges what the job used and
    closes its reservation; `release` closes a reservation without charge (a refused or
    cancelled job). Rows are never updated or deleted.

    A reservation closes once, and the database says so: `reservation_id` (set on closing
    lines only) is unique, so of two concurrent closes one commits and the other fails.
    `for_job` marks a hold that a job's admission made: only that job's end closes it.
    """

    __tablename__ = "allocation_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocation_allocations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    accelerator: Mapped[str] = mapped_column(String(32))
    hours: Mapped[Any] = mapped_column(Hours)
    reservation_id: Mapped[int | None] = mapped_column(
        ForeignKey("allocation_ledger.id"), index=True, unique=True
    )
    job: Mapped[str] = mapped_column(String(100))
    for_job: Mapped[bool] = mapped_column(default=False, server_default=false())
    on: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Balance(Base):
    """What an allocation has drawn in one quarter for one class: settled hours and hours held
    by open reservations. A running sum of the ledger, kept in the same transaction as each
    line (a sub-allocation's lines count toward its parent's balance too), so a budget check
    reads one row per quarter however long the ledger grows. The ledger stays the truth:
    `allocation.ledger.rebuild_balances` recomputes these from it."""

    __tablename__ = "allocation_balances"
    __table_args__ = (
        UniqueConstraint("allocation_id", "accelerator", "quarter"),
        # A second close of one reservation would drive `held` below zero; the unique
        # closing line prevents it, and these checks refuse it should anything else try.
        # (Half a hundredth of slack: SQLite keeps NUMERIC sums as binary floats.)
        CheckConstraint("held > -0.005", name="held_not_negative"),
        CheckConstraint("settled > -0.005", name="settled_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocation_allocations.id"))
    accelerator: Mapped[str] = mapped_column(String(32))
    quarter: Mapped[int] = mapped_column(Integer)
    settled: Mapped[Any] = mapped_column(Hours, default=0)
    held: Mapped[Any] = mapped_column(Hours, default=0)


class ProjectMember(Base):
    """Who belongs to an awarded project: its PI and the team (who may then use its hours,
    its project datasets and models)."""

    __tablename__ = "allocation_members"
    __table_args__ = (UniqueConstraint("project", "person_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project: Mapped[str] = mapped_column(String(40), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    role: Mapped[str] = mapped_column(String(10))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
