"""The device authorization grant's table (RFC 8628): one row per `commonlab login`, from the
request a command line makes to the token it fetches once a signed-in person approved it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["DeviceGrant", "DeviceGrantStatus"]


class DeviceGrantStatus(StrEnum):
    PENDING = "pending"  # waiting for a person to approve or deny it
    APPROVED = "approved"  # approved; the command line has not fetched its token yet
    DENIED = "denied"
    USED = "used"  # the token was fetched: the device code works no more


class DeviceGrant(Base):
    """A device's request to sign in. Both codes are kept only as SHA-256: the table (a
    backup, a leak) fetches no token and approves nothing."""

    __tablename__ = "identity_device_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    # What the device asked for; once approved, what it will get (never more than the
    # approving sign-in has).
    scopes: Mapped[list[str]] = mapped_column(JSON)
    # Where the request came from, shown to the person asked to approve it.
    requested_from: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=DeviceGrantStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Seconds the device must wait between polls; grows by RFC 8628's 5 s at each slow_down.
    interval: Mapped[int] = mapped_column(Integer)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who approved or denied it, and the token of the sign-in they did it from: the token
    # issued is bounded by that one, and is refused if that one stopped working meanwhile.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("identity_people.id"), index=True)
    approver_token_id: Mapped[int | None] = mapped_column(ForeignKey("identity_tokens.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("identity_tokens.id"))
