"""What the operator's instruments read of the record at scrape time
(operations/instruments.py): its signed size, the entries waiting for the sequencer, the
latest checkpoint's time, and how many entries of given types it holds. Read-only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab.record.models import Checkpoint, Entry, Head

__all__ = ["RecordFigures", "count_by_type", "record_figures"]


@dataclass(frozen=True)
class RecordFigures:
    size: int  # entries in the latest signed tree
    unsequenced: int  # appended, not yet folded in and signed
    last_checkpoint_at: datetime | None


def record_figures(db: Session) -> RecordFigures:
    with db.begin():
        size = db.scalar(select(Head.size)) or 0
        waiting = db.scalar(select(func.count()).select_from(Entry).where(Entry.seq.is_(None)))
        last = db.scalar(select(Checkpoint.created_at).order_by(Checkpoint.size.desc()).limit(1))
    return RecordFigures(size=size, unsequenced=waiting or 0, last_checkpoint_at=last)


def count_by_type(db: Session, types: Iterable[str]) -> dict[str, int]:
    """How many entries of each type the record holds (the type index answers)."""
    wanted = list(types)
    query = select(Entry.type, func.count()).where(Entry.type.in_(wanted)).group_by(Entry.type)
    with db.begin():
        found = {kind: count for kind, count in db.execute(query)}
    return {kind: found.get(kind, 0) for kind in wanted}
