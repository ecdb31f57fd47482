"""The facility's own workload, for the simulator: every job submitted over a window with its
submit, start and end, size, class and the pool its project's allocation draws on, and the
fleet as it is in the fleet document's schema (what `commonlab simulate --motion` replays).

The job table is the source on every executor: the facility admits every job it runs, Slurm
ones included, so `compute_jobs` holds them all (a job submitted to Slurm behind the
facility's back is not the facility's work). Projects never appear by name: a tenant is a
number given in order of first submission, and every job of contained work (CL-2 and above)
shares one tenant per pool, so the export says no more of it than its pool and its times,
which the record says in clear already.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from commonlab.allocation import service as allocation_service
from commonlab.compute.fleet_spec import FleetSpec
from commonlab.compute.models import Job, Node, Partition, Site
from commonlab.compute.rules import TERMINAL, JobState
from commonlab.db import utcnow
from commonlab.errors import Conflict, InvalidInput, from_validation
from commonlab.governance.service import active_codes
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "ExportedJob",
    "WorkloadExport",
    "as_row",
    "export_workload",
    "fleet_document",
    "job_pool",
    "to_csv",
]

DEFAULT_DAYS = 92  # a quarter
MAX_DAYS = 366
# The days a window may name (no job of the facility is older than Unix time).
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9999, 12, 30)
# The simulator's plain CSV (`simulator.traces.load_plain` reads it as it is), plus the pool
# each job draws on and its state (a running job's runtime is what it has run so far).
CSV_COLUMNS = ("job_id", "tenant", "pool", "submit", "runtime", "accelerators", "class", "wait")
CSV_EXTRA = ("state",)
# The simulator's name for a member state's pool (`simulator.inputs.pool_of_member`).
NATIONAL = "national:"
NATIONAL_POOLS = "national_pools"

LEFT_WAITING = "still waiting for a start: its runtime is not known yet"
LEFT_NEVER_RAN = "ended without running"


@dataclass(frozen=True)
class ExportedJob:
    job_id: int
    tenant: str
    pool: str
    state: str
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    runtime_s: float | None  # None: it never ran, or has not started yet
    accelerators: int  # the whole job's (per node times nodes)
    accelerator_class: str

    @property
    def wait_s(self) -> float | None:
        if self.started_at is None:
            return None
        return max(0.0, (self.started_at - self.submitted_at).total_seconds())


@dataclass(frozen=True)
class WorkloadExport:
    start: datetime
    end: datetime
    jobs: list[ExportedJob]

    @property
    def ran(self) -> list[ExportedJob]:
        """The jobs a simulator can replay: those with a runtime."""
        return [j for j in self.jobs if j.runtime_s is not None]

    def left_out(self) -> dict[str, int]:
        """Jobs of the window the CSV leaves out, by reason."""
        counts: dict[str, int] = {}
        for job in self.jobs:
            if job.runtime_s is None:
                reason = LEFT_NEVER_RAN if job.state in TERMINAL else LEFT_WAITING
                counts[reason] = counts.get(reason, 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "jobs": len(self.jobs),
            "replayable": len(self.ran),
            "left_out": self.left_out(),
        }


def window(start: date | None, end: date | None, *, today: date | None = None) -> tuple[date, date]:
    """[start, end) in UTC days: by default the last `DEFAULT_DAYS` days up to today included."""
    for name, day in (("start", start), ("end", end)):
        # Days near date's own limits would overflow the default window's arithmetic.
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise InvalidInput(
                f"{name} {day.isoformat()} is out of range: give a day from "
                f"{EARLIEST_DAY.isoformat()} to {LATEST_DAY.isoformat()}"
            )
    end = end or (today or utcnow().date()) + timedelta(days=1)
    start = start or end - timedelta(days=DEFAULT_DAYS)
    if end <= start:
        raise InvalidInput(
            f"end ({end.isoformat()}) must be after start ({start.isoformat()}): the export "
            "covers the days from start up to, not including, end"
        )
    if (end - start).days > MAX_DAYS:
        raise InvalidInput(
            f"the window from {start.isoformat()} to {end.isoformat()} is "
            f"{(end - start).days} days: at most {MAX_DAYS} are exported at once"
        )
    return start, end


def export_workload(
    db: Session, actor: Principal, *, start: date | None = None, end: date | None = None
) -> WorkloadExport:
    """Jobs submitted in [start, end) (UTC days; default the last quarter), oldest first."""
    first, last = window(start, end)
    since, until = (datetime.combine(day, time.min, tzinfo=UTC) for day in (first, last))
    now = utcnow()
    with db.begin():
        authorize(actor, Action.WorkloadExport, Resource.fleet())
        # Only the columns a replay needs: a quarter of a large facility is many jobs, and
        # their commands and environments are none of the simulator's business.
        rows = db.execute(
            select(*_COLUMNS)
            .where(Job.submitted_at >= since, Job.submitted_at < until)
            .order_by(Job.submitted_at, Job.id)
        ).all()
        funding = allocation_service.funding_of(db, {j.allocation_id for j in rows})
        members = active_codes(db)
    tenants: dict[tuple[str, str], str] = {}
    jobs = []
    for job in rows:
        pool_name, country = funding.get(job.allocation_id, (NATIONAL_POOLS, None))
        pool = job_pool(pool_name, country, members)
        # Contained work is one tenant per pool: which of its projects ran what stays inside.
        who = f"contained:{pool}" if job.level >= Level.CL2 else f"project:{job.project}"
        tenant = tenants.setdefault((who, pool), f"t{len(tenants) + 1}")
        jobs.append(
            ExportedJob(
                job_id=job.id,
                tenant=tenant,
                pool=pool,
                state=job.state,
                submitted_at=job.submitted_at,
                started_at=_started(job),
                ended_at=job.ended_at,
                runtime_s=_runtime(job, now),
                accelerators=job.accelerators * job.nodes,
                accelerator_class=job.accelerator,
            )
        )
    return WorkloadExport(start=since, end=until, jobs=jobs)


def job_pool(pool: str, country: str | None, members: set[str]) -> str:
    """The pool a job draws on, named as the simulator names them: a national allocation of a
    member state is that state's pool (`national:DE`); any other allocation its own pool."""
    if pool == NATIONAL_POOLS and country in members:
        return f"{NATIONAL}{country}"
    return pool


_COLUMNS = (
    Job.id,
    Job.project,
    Job.allocation_id,
    Job.level,
    Job.state,
    Job.accelerator,
    Job.accelerators,
    Job.nodes,
    Job.submitted_at,
    Job.started_at,
    Job.ended_at,
    Job.elapsed_seconds,
)


def _started(job: Row[Any]) -> datetime | None:
    if job.started_at is not None:
        return job.started_at
    # A short job can end between two polls of the executor, unseen running.
    if job.ended_at is not None and job.elapsed_seconds is not None:
        return job.ended_at - timedelta(seconds=job.elapsed_seconds)
    return None


def _runtime(job: Row[Any], now: datetime) -> float | None:
    if job.elapsed_seconds is not None and job.ended_at is not None:
        return float(job.elapsed_seconds)
    if job.started_at is None:
        return None
    if job.ended_at is not None:
        return max(0.0, (job.ended_at - job.started_at).total_seconds())
    if job.state == JobState.RUNNING:
        return max(0.0, (now - job.started_at).total_seconds())
    return None


def as_row(job: ExportedJob, export: WorkloadExport) -> dict[str, Any]:
    """One job as the export shows it: the CSV's columns (seconds from the window's start;
    None where a job has no runtime or start yet) and its times."""
    wait = job.wait_s
    return {
        "job_id": job.job_id,
        "tenant": job.tenant,
        "pool": job.pool,
        "submit": _seconds((job.submitted_at - export.start).total_seconds()),
        "runtime": None if job.runtime_s is None else _seconds(job.runtime_s),
        "accelerators": job.accelerators,
        "class": job.accelerator_class,
        "wait": None if wait is None else _seconds(wait),
        "state": job.state,
        "submitted_at": job.submitted_at.isoformat(),
        "started_at": None if job.started_at is None else job.started_at.isoformat(),
        "ended_at": None if job.ended_at is None else job.ended_at.isoformat(),
    }


def to_csv(export: WorkloadExport) -> str:
    """The replayable jobs as the simulator's plain CSV."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*CSV_COLUMNS, *CSV_EXTRA], extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(as_row(job, export) for job in export.ran)
    return buffer.getvalue()


def _seconds(value: float) -> float:
    return round(value, 3)


def fleet_document(db: Session, actor: Principal) -> FleetSpec:
    """The fleet as it is, in the schema `PUT /fleet` takes: every partition with nodes, each
    at its size today (drained nodes included: they are capacity, out for a while)."""
    with db.begin():
        authorize(actor, Action.FleetRead, Resource.fleet())
        nodes = dict(
            db.execute(select(Node.partition_id, func.count()).group_by(Node.partition_id)).all()
        )
        sites = {s.id: s for s in db.scalars(select(Site).order_by(Site.name))}
        partitions = [
            p
            for p in db.scalars(select(Partition).order_by(Partition.name))
            if nodes.get(p.id, 0) > 0
        ]
        if not partitions:
            raise Conflict("the facility has no partition with nodes yet: apply a fleet first")
        used = {p.site_id for p in partitions}
        document = {
            "sites": [
                {"name": s.name, "country": s.country} for s in sites.values() if s.id in used
            ],
            "partitions": [
                {
                    "name": p.name,
                    "site": sites[p.site_id].name,
                    "accelerator": p.accelerator,
                    "nodes": nodes[p.id],
                    "accelerators_per_node": p.accelerators_per_node,
                    "cpus_per_node": p.cpus_per_node,
                    "memory_gb_per_node": p.memory_gb_per_node,
                    "nodes_per_domain": p.nodes_per_domain,
                    "certified_level": p.certified_level,
                }
                for p in partitions
            ],
        }
    try:
        return FleetSpec.model_validate(document)
    except ValidationError as exc:
        # A partition registered outside a fleet document (the local machine's, on a host of
        # more cores than a document's node may have) cannot be described as one.
        raise Conflict(from_validation(exc, where="the fleet", document="fleet").message) from None
