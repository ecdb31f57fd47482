"""The public jobs report: jobs admitted over a period, per partition, level and state, with
the hours they held and were charged (`GET /api/v1/reports/jobs`).

It says no more than the record already says in clear of every job, contained ones included
(`compute:job:admitted` names the partition and level, each end its charged hours), so anyone
may read it, and `commonlab audit` can recount it from the record alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from commonlab.compute.models import Job, Partition
from commonlab.errors import InvalidInput
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.principal import Principal

__all__ = ["JOBS_REPORT_COLUMNS", "jobs_report"]

JOBS_REPORT_COLUMNS = [
    "partition",
    "level",
    "state",
    "jobs",
    "ran",
    "reserved_hours",
    "charged_hours",
]
_CENTS = Decimal("0.01")


def jobs_report(db: Session, actor: Principal, *, start: date, end: date) -> dict[str, Any]:
    """Jobs admitted in [start, end) (UTC days), one row per partition, level and current
    state: how many, how many ran (entered `running`), the hours they held at admission and
    the hours they were charged."""
    if end <= start:
        raise InvalidInput(
            f"end ({end.isoformat()}) must be after start ({start.isoformat()}): the report "
            "covers the days from start up to, not including, end"
        )
    since, until = (datetime.combine(day, time.min, tzinfo=UTC) for day in (start, end))
    with db.begin():
        authorize(actor, Action.FleetRead, Resource.fleet())
        grouped = db.execute(
            select(
                Partition.name,
                Job.level,
                Job.state,
                func.count().label("jobs"),
                func.sum(case((Job.started_at.is_not(None), 1), else_=0)).label("ran"),
                func.sum(Job.reserved_hours).label("reserved"),
                func.sum(func.coalesce(Job.charged_hours, 0)).label("charged"),
            )
            .join(Partition, Partition.id == Job.partition_id)
            .where(Job.submitted_at >= since, Job.submitted_at < until)
            .group_by(Partition.name, Job.level, Job.state)
            .order_by(Partition.name, Job.level, Job.state)
        ).all()
    rows = [
        {
            "partition": row.name,
            "level": f"CL-{row.level}",
            "state": row.state,
            "jobs": row.jobs,
            "ran": int(row.ran or 0),
            "reserved_hours": _hours(row.reserved),
            "charged_hours": _hours(row.charged),
        }
        for row in grouped
    ]
    return {"start": start.isoformat(), "end": end.isoformat(), "rows": rows}


def _hours(value: Any) -> str:
    # The ledger's unit is a hundredth of an hour; SQLite sums numerics as floats.
    return str(Decimal(str(value or 0)).quantize(_CENTS))
