"""Governance tables: member states and their delegates, contribution scales, motions and the
votes cast on them (the adopted regulation versions are regulation/'s)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["Delegate", "MemberState", "Motion", "ScaleVersion", "Vote"]


class MemberState(Base):
    __tablename__ = "governance_member_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(2), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    admitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None for the founding members; otherwise the motion that admitted the state. A plain
    # id, not a foreign key: motions already point at member states, and a cycle of keys
    # would leave no order to create (or empty) the two tables in.
    admitted_by_motion: Mapped[int | None] = mapped_column(Integer)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    delegates: Mapped[list[Delegate]] = relationship(back_populates="member_state")

    @property
    def active(self) -> bool:
        return self.removed_at is None


class Delegate(Base):
    """A person appointed by a member state to sit on the council for it."""

    __tablename__ = "governance_delegates"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    member_state_id: Mapped[int] = mapped_column(
        ForeignKey("governance_member_states.id"), index=True
    )
    appointed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    member_state: Mapped[MemberState] = relationship(back_populates="delegates")


class ScaleVersion(Base):
    """An adopted contribution scale: member state code → percent."""

    __tablename__ = "governance_scales"

    id: Mapped[int] = mapped_column(primary_key=True)
    shares: Mapped[dict[str, str]] = mapped_column(JSON)
    adopted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    motion_id: Mapped[int | None] = mapped_column(ForeignKey("governance_motions.id"))


class Motion(Base):
    __tablename__ = "governance_motions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    rule: Mapped[str] = mapped_column(String(20))
    tabled_by: Mapped[int] = mapped_column(ForeignKey("identity_people.id"))
    tabled_for: Mapped[int] = mapped_column(ForeignKey("governance_member_states.id"))
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    votes: Mapped[list[Vote]] = relationship(back_populates="motion", order_by="Vote.id")


class Vote(Base):
    """One member state's vote on one motion; it may change until the motion closes."""

    __tablename__ = "governance_votes"
    __table_args__ = (UniqueConstraint("motion_id", "member_state_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    motion_id: Mapped[int] = mapped_column(ForeignKey("governance_motions.id"), index=True)
    member_state_id: Mapped[int] = mapped_column(ForeignKey("governance_member_states.id"))
    choice: Mapped[str] = mapped_column(String(8))
    cast_by: Mapped[int] = mapped_column(ForeignKey("identity_people.id"))
    cast_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    motion: Mapped[Motion] = relationship(back_populates="votes")
    member_state: Mapped[MemberState] = relationship()
