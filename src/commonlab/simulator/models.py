"""Simulator tables: the what-if comparisons attached to the council's motions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["WhatIf"]


class WhatIf(Base):
    """One comparison of a motion's proposed regulation with the one in force, on one
    workload; the latest one attached is what the motion's page shows."""

    __tablename__ = "simulator_whatifs"

    id: Mapped[int] = mapped_column(primary_key=True)
    motion_id: Mapped[int] = mapped_column(ForeignKey("governance_motions.id"), index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SHA-256 of the document's canonical JSON: the digest the public record carries.
    sha256: Mapped[str] = mapped_column(String(64))
    attached_by: Mapped[int] = mapped_column(ForeignKey("identity_people.id"))
    attached_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
