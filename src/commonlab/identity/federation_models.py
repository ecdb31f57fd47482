"""Federation's tables: who a provider says a person is, how an affiliation claim names an
institution, the affiliations no rule maps yet, and the sign-ins in flight."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["AffiliationMapping", "FederatedIdentity", "FederationLogin", "PendingAffiliation"]


class FederatedIdentity(Base):
    """A person as one provider knows them: the issuer and its `sub`, never the e-mail (an
    address changes hands; a subject at an issuer does not)."""

    __tablename__ = "identity_federated_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    # The provider's name in the settings when the link was made (for pages; the issuer is
    # what identifies).
    provider: Mapped[str] = mapped_column(String(40))
    issuer: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the provider last said of the person's name and e-mail (None: nothing usable, or
    # a link made before the facility kept it): a later sign-in that says otherwise updates
    # the person, unless the person changed the field here since.
    claimed_name: Mapped[str | None] = mapped_column(String(200))
    claimed_email: Mapped[str | None] = mapped_column(String(320))


class AffiliationMapping(Base):
    """An operator's rule: an affiliation claim's value (a home organisation's domain, or an
    issuer URL) names this registered institution."""

    __tablename__ = "identity_affiliation_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[str] = mapped_column(String(300), unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("identity_institutions.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PendingAffiliation(Base):
    """An affiliation claim no rule maps: it waits for an operator, who maps it to an
    institution (for this person and everyone after) or dismisses it."""

    __tablename__ = "identity_pending_affiliations"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(300), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # "mapped" or "dismissed" once an operator decided; None while it waits.
    decision: Mapped[str | None] = mapped_column(String(10))
    decided_by: Mapped[str | None] = mapped_column(String(40))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FederationLogin(Base):
    """One trip to a provider and back. The state's SHA-256 finds it; the browser that began
    it holds a cookie whose SHA-256 is kept, so a state carried to another browser is refused;
    it is used once."""

    __tablename__ = "identity_federation_logins"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    browser_sha256: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(40))
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    # Set when a signed-in person links another provider (or ORCID) to themselves.
    link_person_id: Mapped[int | None] = mapped_column(ForeignKey("identity_people.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
