"""Identity tables: institutions, people, their roles, API tokens and clearances."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["ApiToken", "ClearanceGrant", "Institution", "InstitutionKind", "Person", "RoleGrant"]


class InstitutionKind(StrEnum):
    UNIVERSITY = "university"
    RESEARCH_LAB = "research_lab"
    SME = "sme"
    GOVERNMENT = "government"
    NGO = "ngo"


class Institution(Base):
    __tablename__ = "identity_institutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    people: Mapped[list[Person]] = relationship(back_populates="institution")


class Person(Base):
    __tablename__ = "identity_people"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The record names people by this stable pseudonym, never by name or e-mail.
    pseudonym: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    orcid: Mapped[str | None] = mapped_column(String(19), unique=True)
    institution_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_institutions.id"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    institution: Mapped[Institution | None] = relationship(back_populates="people")
    roles: Mapped[list[RoleGrant]] = relationship(
        back_populates="person", cascade="all, delete-orphan", order_by="RoleGrant.role"
    )
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="person")
    clearances: Mapped[list[ClearanceGrant]] = relationship(
        back_populates="person", foreign_keys="ClearanceGrant.person_id"
    )


class RoleGrant(Base):
    __tablename__ = "identity_roles"
    __table_args__ = (UniqueConstraint("person_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    granted_by: Mapped[str] = mapped_column(String(40))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    person: Mapped[Person] = relationship(back_populates="roles")


class ApiToken(Base):
    """A bearer token. Only the SHA-256 of its secret is kept; the secret is shown once."""

    __tablename__ = "identity_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    # Indexed: a job's token is found by its name (`job/<id>`) when the job ends.
    name: Mapped[str] = mapped_column(String(100), index=True)
    # Public half of the token, used to find the row without comparing secrets in SQL.
    key_id: Mapped[str] = mapped_column(String(24), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # A token confined to one project (a job's): only that project's membership counts, and
    # none of its holder's roles.
    project: Mapped[str | None] = mapped_column(String(40))
    # A job's token reads at most at its job's containment level, whatever its holder's
    # clearance (None for a person's own token).
    level: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    person: Mapped[Person] = relationship(back_populates="tokens")


class ClearanceGrant(Base):
    """A person's clearance; a new grant supersedes (revokes) the one before it."""

    __tablename__ = "identity_clearances"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    level: Mapped[int] = mapped_column(Integer)
    compartments: Mapped[list[str]] = mapped_column(JSON)
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("identity_people.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    person: Mapped[Person] = relationship(back_populates="clearances", foreign_keys=[person_id])
