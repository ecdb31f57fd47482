"""The regulation in force, at any moment: what every other domain reads.

Until the council adopts its first regulation, the built-in provisional one is in force
(version 0). Kept apart from the service so identity and later domains can read it without
importing the council's machinery.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from commonlab.governance.models import RegulationVersion
from commonlab.governance.regulation import Regulation, default_regulation, regulation_hash

__all__ = ["InForce", "regulation_in_force"]


@dataclass(frozen=True)
class InForce:
    version: int
    regulation: Regulation
    sha256: str
    adopted_at: datetime | None
    motion_id: int | None = None  # the motion that adopted it (None for the provisional one)


def regulation_in_force(db: Session, *, at: datetime | None = None) -> InForce:
    """The regulation in force now, or at a past moment `at` (in the caller's transaction)."""
    query = select(RegulationVersion).order_by(RegulationVersion.version.desc()).limit(1)
    if at is not None:
        query = query.where(RegulationVersion.adopted_at <= at)
    row = db.scalar(query)
    if row is None:
        return _provisional()
    return InForce(
        row.version, _parsed(row.sha256, row.document), row.sha256, row.adopted_at, row.motion_id
    )


@functools.cache
def _provisional() -> InForce:
    provisional = default_regulation()
    return InForce(0, provisional, regulation_hash(provisional), None)


# An adopted version never changes, and its hash names it: parse each one once (admission
# reads the regulation for every job).
_PARSED: dict[str, Regulation] = {}


def _parsed(sha256: str, document: dict[str, Any]) -> Regulation:
    regulation = _PARSED.get(sha256)
    if regulation is None:
        regulation = _PARSED[sha256] = Regulation.model_validate(document)
    return regulation
