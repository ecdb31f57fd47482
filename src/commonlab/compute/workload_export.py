"""The facility's own workload, for the simulator: every job submitted over a window with its
submit, start and end, size, class and the pool its project's allocation draws on, and the
fleet as it is in the fleet document's schema (what `commonlab simulate --motion` replays).

The job table is the source on every executor: the facility admits every job it runs, Slurm
ones included, so `compute_jobs` holds them all (a job submitted to Slurm behind the
facility's back is not the facility's work). Projects never appear by name: a tenant is a
number given in order of first submission, and every job of contained work (CL-2 and above)
shares one tenant per pool, so the export says no more of it than its pool and its times,
which the record says in clear already.

An export is streamed: its jobs are read a batch at a time and written as they are read, in
each of its forms (CSV, one JSON object, or JSON lines), so a quarter of millions of jobs
never sits whole in the facility's memory, nor, reading JSON lines, in the client's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from commonlab.allocation import service as allocation_service
from commonlab.compute.fleet_spec import FleetSpec
from commonlab.compute.models import Job, Node, Partition, Site
from commonlab.compute.rules import TERMINAL, JobState
from commonlab.db import Database, utcnow
from commonlab.errors import Conflict, InvalidInput, from_validation
from commonlab.governance.service import active_codes
from commonlab.policy import Action, Resource, authorize
from commonlab.policy.levels import Level
from commonlab.policy.principal import Principal

__all__ = [
    "BATCH",
    "CSV_COLUMNS",
    "DEFAULT_DAYS",
    "FORMATS",
    "MAX_DAYS",
    "ExportWindow",
    "ExportedJob",
    "Totals",
    "as_row",
    "count",
    "csv_pieces",
    "exported_jobs",
    "fleet_document",
    "job_pool",
    "json_pieces",
    "ndjson_pieces",
    "open_export",
    "streamed",
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

# Jobs read from the database, and written to the answer, at a time.
BATCH = 2_000

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
class ExportWindow:
    """The window an export covers, [start, end) in UTC: what `open_export` granted."""

    start: datetime
    end: datetime


@dataclass
class Totals:
    """What an export held, counted as its jobs pass (or, for the CSV's headers, before)."""

    jobs: int = 0
    replayable: int = 0
    left_out: dict[str, int] = field(default_factory=dict)

    def add(self, state: str, *, replayable: bool, count: int = 1) -> None:
        self.jobs += count
        if replayable:
            self.replayable += count
        else:
            reason = LEFT_NEVER_RAN if state in TERMINAL else LEFT_WAITING
            self.left_out[reason] = self.left_out.get(reason, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "replayable": self.replayable, "left_out": self.left_out}


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


def open_export(
    db: Session, actor: Principal, *, start: date | None = None, end: date | None = None
) -> ExportWindow:
    """May `actor` export the jobs submitted in [start, end) (UTC days; default the last
    quarter)? The window granted; refused before a byte of the export is sent."""
    first, last = window(start, end)
    with db.begin():
        authorize(actor, Action.WorkloadExport, Resource.fleet())
    since, until = (datetime.combine(day, time.min, tzinfo=UTC) for day in (first, last))
    return ExportWindow(start=since, end=until)


def exported_jobs(db: Session, export: ExportWindow) -> Iterator[ExportedJob]:
    """The window's jobs, oldest first, read `BATCH` rows at a time in the caller's
    transaction: a quarter of a large facility is millions of jobs, and neither the
    database's answer nor the export is ever held whole."""
    now = utcnow()
    members = active_codes(db)
    funding: dict[int, tuple[str, str | None]] = {}
    tenants: dict[tuple[str, str], str] = {}
    # Only the columns a replay needs: their commands and environments are none of the
    # simulator's business.
    rows = db.execute(
        select(*_COLUMNS)
        .where(Job.submitted_at >= export.start, Job.submitted_at < export.end)
        .order_by(Job.submitted_at, Job.id),
        execution_options={"yield_per": BATCH},
    )
    for part in rows.partitions():
        unknown = {job.allocation_id for job in part} - funding.keys()
        funding.update(allocation_service.funding_of(db, unknown))
        for job in part:
            pool_name, country = funding.get(job.allocation_id, (NATIONAL_POOLS, None))
            pool = job_pool(pool_name, country, members)
            # Contained work is one tenant per pool: which of its projects ran what stays
            # inside.
            who = f"contained:{pool}" if job.level >= Level.CL2 else f"project:{job.project}"
            tenant = tenants.setdefault((who, pool), f"t{len(tenants) + 1}")
            yield ExportedJob(
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


def count(db: Session, export: ExportWindow) -> Totals:
    """The window's totals without reading its jobs (the CSV says them in its headers,
    before the rows), in a transaction of its own: the database counts the jobs per state
    and per which of the times a runtime comes from are known, and `_runs_known` sorts the
    groups."""
    known = (
        Job.started_at.is_not(None),
        Job.ended_at.is_not(None),
        Job.elapsed_seconds.is_not(None),
    )
    with db.begin():
        groups = db.execute(
            select(Job.state, *known, func.count())
            .where(Job.submitted_at >= export.start, Job.submitted_at < export.end)
            .group_by(Job.state, *known)
        ).all()
    totals = Totals()
    for state, started, ended, elapsed, jobs in groups:
        ran = _runs_known(state, started=started, ended=ended, elapsed=elapsed)
        totals.add(state, replayable=ran, count=jobs)
    return totals


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


def _runs_known(state: str, *, started: bool, ended: bool, elapsed: bool) -> bool:
    """Whether a job's runtime is known from which of its times are (`_runtime`'s cases):
    the one rule for the rows and for the totals the database counts."""
    return (elapsed and ended) or (started and (ended or state == JobState.RUNNING))


def _runtime(job: Row[Any], now: datetime) -> float | None:
    known = (job.started_at, job.ended_at, job.elapsed_seconds)
    started, ended, elapsed = (value is not None for value in known)
    if not _runs_known(job.state, started=started, ended=ended, elapsed=elapsed):
        return None
    if elapsed and ended:
        return float(job.elapsed_seconds)
    if ended:
        return max(0.0, (job.ended_at - job.started_at).total_seconds())
    return max(0.0, (now - job.started_at).total_seconds())


def as_row(job: ExportedJob, export: ExportWindow) -> dict[str, Any]:
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


# The export's three forms, each written as its jobs are read: pieces of about `BATCH`
# jobs each, so a response sends few large writes rather than one per job.


def csv_pieces(jobs: Iterable[ExportedJob], export: ExportWindow) -> Iterator[str]:
    """The replayable jobs as the simulator's plain CSV (`load_trace` reads it as it is)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=[*CSV_COLUMNS, *CSV_EXTRA], extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for part in _parts(job for job in jobs if job.runtime_s is not None):
        writer.writerows(as_row(job, export) for job in part)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def json_pieces(jobs: Iterable[ExportedJob], export: ExportWindow) -> Iterator[str]:
    """One JSON object: the window, every job in `rows` (those not run yet too), then the
    totals, which are only known once the rows have passed."""
    totals = Totals()
    yield json.dumps({"from": export.start.isoformat(), "to": export.end.isoformat()})[:-1]
    yield ', "rows": ['
    first = True
    for part in _parts(_counted(jobs, totals)):
        rows = ", ".join(json.dumps(as_row(job, export)) for job in part)
        yield rows if first else ", " + rows
        first = False
    yield "], " + json.dumps(totals.as_dict())[1:]


def ndjson_pieces(jobs: Iterable[ExportedJob], export: ExportWindow) -> Iterator[str]:
    """One JSON object per line, read as it comes: `{"window": {from, to}}`, a `{"job":
    row}` per job, and `{"totals": {jobs, replayable, left_out}}` last; an answer cut short
    lacks the last line, so a reader knows it is not whole."""
    totals = Totals()
    window = {"from": export.start.isoformat(), "to": export.end.isoformat()}
    yield json.dumps({"window": window}) + "\n"
    for part in _parts(_counted(jobs, totals)):
        yield "".join(json.dumps({"job": as_row(job, export)}) + "\n" for job in part)
    yield json.dumps({"totals": totals.as_dict()}) + "\n"


Pieces = Callable[[Iterable[ExportedJob], ExportWindow], Iterator[str]]
FORMATS: dict[str, tuple[Pieces, str]] = {
    "csv": (csv_pieces, "text/csv; charset=utf-8"),
    "json": (json_pieces, "application/json"),
    "ndjson": (ndjson_pieces, "application/x-ndjson"),
}


def streamed(database: Database, export: ExportWindow, pieces: Pieces) -> Iterator[str]:
    """An export in one of its forms, read in a session and transaction of its own: the
    answer is sent after the route that granted it has returned."""
    with database.session() as db, db.begin():
        yield from pieces(exported_jobs(db, export), export)


def _counted(jobs: Iterable[ExportedJob], totals: Totals) -> Iterator[ExportedJob]:
    for job in jobs:
        totals.add(job.state, replayable=job.runtime_s is not None)
        yield job


def _parts(jobs: Iterable[ExportedJob]) -> Iterator[list[ExportedJob]]:
    jobs = iter(jobs)
    while part := list(islice(jobs, BATCH)):
        yield part


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
