"""The portal's table: sign-in sessions, kept on the server so that a session ends when the
person signs out or the server says it has expired, whatever the browser still holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["PortalSession"]


class PortalSession(Base):
    """One browser's sign-in. The cookie carries a random id; only its SHA-256 is kept here,
    so the table (a backup, a leak) opens no session, and the API token never leaves it."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("identity_tokens.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Absolute: never past a working day, nor past the token's own expiry.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
