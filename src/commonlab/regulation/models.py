"""The regulation's one table: every adopted version of the document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["RegulationVersion"]


class RegulationVersion(Base):
    """An adopted regulation. Only adopted versions are stored; proposals live in motions.

    The table keeps the name it had while governance owned it (`governance_regulations`),
    with the same columns and constraints, so moving the class here needed no migration
    (tests/test_migrations.py compares the two). `motion_id` names the motion that adopted
    the version; the key is declared by table name, so nothing here imports governance.
    """

    __tablename__ = "governance_regulations"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    adopted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    motion_id: Mapped[int | None] = mapped_column(ForeignKey("governance_motions.id"))
