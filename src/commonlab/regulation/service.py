"""What other domains ask of the regulation: the version in force (now or at a past moment),
every version adopted so far, and storing a version the council adopted. In the caller's
transaction; the callers authorize what they read it for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab.errors import NotFound
from commonlab.regulation.document import Regulation, regulation_hash
from commonlab.regulation.in_force import InForce, adopted, provisional
from commonlab.regulation.models import RegulationVersion

__all__ = ["InForce", "adopt", "history", "in_force", "version"]


def in_force(db: Session, *, at: datetime | None = None) -> InForce:
    """The regulation in force now, or at a past moment `at`."""
    query = select(RegulationVersion).order_by(RegulationVersion.version.desc()).limit(1)
    if at is not None:
        query = query.where(RegulationVersion.adopted_at <= at)
    row = db.scalar(query)
    return provisional() if row is None else _in_force(row)


def history(db: Session) -> list[InForce]:
    """Every adopted version, newest first, then the provisional one (version 0)."""
    rows = db.scalars(select(RegulationVersion).order_by(RegulationVersion.version.desc()))
    return [*(_in_force(row) for row in rows), provisional()]


def version(db: Session, number: int) -> InForce:
    """One version by its number (0 is the provisional one), or NotFound."""
    if number == 0:
        return provisional()
    row = db.scalar(select(RegulationVersion).where(RegulationVersion.version == number))
    if row is None:
        raise NotFound(f"no regulation version {number}")
    return _in_force(row)


def adopt(db: Session, regulation: Regulation, *, motion_id: int) -> InForce:
    """Store `regulation` as the next version, adopted by `motion_id`; in force from now.
    The caller (the council's motion) authorizes it and puts it on the record."""
    last = db.scalar(select(func.max(RegulationVersion.version))) or 0
    row = RegulationVersion(
        version=last + 1,
        document=regulation.model_dump(mode="json"),
        sha256=regulation_hash(regulation),
        motion_id=motion_id,
    )
    db.add(row)
    db.flush()
    return _in_force(row)


def _in_force(row: RegulationVersion) -> InForce:
    return adopted(row.version, row.document, row.sha256, row.adopted_at, row.motion_id)
