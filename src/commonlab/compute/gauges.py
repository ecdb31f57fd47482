"""What the operator's instruments read of compute at scrape time (operations/instruments.py):
jobs not yet ended per partition and state, and how many were ever admitted. Read-only."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commonlab.compute.models import Job, Partition
from commonlab.compute.rules import TERMINAL, JobState

__all__ = ["admitted_total", "live_jobs"]

_LIVE = [state.value for state in JobState if state not in TERMINAL]


def live_jobs(db: Session) -> list[tuple[str, str, int]]:
    """(partition, state, jobs) for every partition holding jobs admitted, queued or running:
    the queue depth per partition is its admitted and queued ones. A range of the
    (state, partition) index, so it costs what is live, not the jobs' whole history."""
    query = (
        select(Partition.name, Job.state, func.count())
        .join(Partition, Partition.id == Job.partition_id)
        .where(Job.state.in_(_LIVE))
        .group_by(Partition.name, Job.state)
    )
    with db.begin():
        return [(name, state, count) for name, state, count in db.execute(query)]


def admitted_total(db: Session) -> int:
    """Every job ever admitted: a refusal at admission leaves no row."""
    with db.begin():
        return db.scalar(select(func.count()).select_from(Job)) or 0
