"""The compute book: which jobs the record says were admitted, where, at which level, how each
ended and what it was charged, and the fleet's partitions and their certification; replayed,
checked against the ledger, and compared with what the facility publishes to anyone.

Every job is on the record in clear as far as this book needs, contained ones too: its
admission names the partition, level, accelerators and the hours held; each later state is
an entry; its end says the hours charged and the seconds it ran, and the allocation ledger's
`settled` or `released` line closes its hold, naming the job. So the record alone says, per
partition, level and state, how many jobs were admitted, how many ran and what they were
charged; the facility's public jobs report (`GET /api/v1/reports/jobs`) must say the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from commonlab.audit.findings import Findings
from commonlab.audit.log import Entry
from commonlab.audit.published import Published
from commonlab.audit.replay import Book, reads
from commonlab.compute.events import ComputeEvent

__all__ = ["ComputeBook", "ReplayedJob"]

ZERO = Decimal(0)
# The states a job ends in; every other entry about it comes before one of these.
ENDS = {
    ComputeEvent.JobSucceeded: "succeeded",
    ComputeEvent.JobFailed: "failed",
    ComputeEvent.JobCancelled: "cancelled",
    ComputeEvent.JobTimedOut: "timed_out",
    ComputeEvent.JobRefused: "refused",
}
_LEDGER_SETTLED = "allocation:ledger:settled"
_LEDGER_RELEASED = "allocation:ledger:released"


@dataclass
class ReplayedJob:
    """One job as its entries tell it."""

    key: str  # job/<id>
    project: str
    allocation: int
    partition: str
    accelerator_class: str
    accelerators: int
    level: str
    reserved_hours: Decimal
    admitted_on: date
    state: str = "admitted"
    ran: bool = False  # it entered `running`
    ends: int = 0  # how many end entries it has (one, once it ended)
    charged_hours: Decimal | None = None
    elapsed_seconds: int | None = None
    after_end: list[str] = field(default_factory=list)  # states entered after it ended


class ComputeBook(Book):
    name = "compute"

    def __init__(self) -> None:
        self.jobs: dict[str, ReplayedJob] = {}
        self.certified: dict[str, int] = {}  # partition → level a motion certified it for
        self.partitions: set[str] = set()  # every partition the record names
        self.fleet_named_partitions = True  # False once a fleet entry did not name them
        self.ledger: dict[str, list[tuple[str, Decimal]]] = {}  # job → its hold's closes
        self.strays: list[str] = []  # a state of a job never admitted

    # Replay ---------------------------------------------------------------------------------

    @reads(ComputeEvent.FleetApplied)
    def fleet_applied(self, entry: Entry) -> None:
        """The fleet's partitions, by name (nothing a fleet document does not name is
        removed, so the fleet holds every partition ever applied)."""
        names = entry.data.get("partition_names")
        if names is None:
            self.fleet_named_partitions = False
            return
        self.partitions.update(names)

    @reads(ComputeEvent.PartitionCertified)
    def partition_certified(self, entry: Entry) -> None:
        """The level a partition is certified for from here on, by the motion that says so."""
        name = entry.subject_id
        self.partitions.add(name)
        self.certified[name] = _level_number(entry.data["to"])

    @reads(ComputeEvent.JobAdmitted)
    def job_admitted(self, entry: Entry) -> None:
        """A job exists: its project, allocation, partition, class, accelerators, level,
        the hours held for it and the day it was admitted (which report period it is in)."""
        data = entry.data
        self.partitions.add(data["partition"])
        self.jobs[entry.subject] = ReplayedJob(
            key=entry.subject,
            project=data["project"],
            allocation=data["allocation"],
            partition=data["partition"],
            accelerator_class=data["class"],
            accelerators=data["accelerators"],
            level=data["level"],
            reserved_hours=Decimal(data["reserved_hours"]),
            admitted_on=entry.day,
        )

    @reads(ComputeEvent.JobQueued, ComputeEvent.JobRunning)
    def job_moved(self, entry: Entry) -> None:
        """The job's state from here on (`running`: the job ran, so it may be charged)."""
        job = self._job(entry)
        if job is None:
            return
        state = entry.type.rpartition(":")[2]
        if job.ends:
            job.after_end.append(state)
            return
        job.state = state
        job.ran = job.ran or state == "running"

    @reads(*ENDS)
    def job_ended(self, entry: Entry) -> None:
        """How the job ended, the hours it was charged and the seconds it ran."""
        job = self._job(entry)
        if job is None:
            return
        job.ends += 1
        if job.ends > 1:
            job.after_end.append(ENDS[ComputeEvent(entry.type)])
            return
        job.state = ENDS[ComputeEvent(entry.type)]
        job.charged_hours = Decimal(entry.data.get("charged_hours", "0"))
        job.elapsed_seconds = entry.data.get("elapsed_seconds", 0)

    @reads(_LEDGER_SETTLED, _LEDGER_RELEASED)
    def hold_closed(self, entry: Entry) -> None:
        """The ledger closes a job's hold: settled with the hours charged, or released."""
        job = entry.data.get("job")
        if isinstance(job, str) and job.startswith("job/"):
            kind = "settled" if entry.type == _LEDGER_SETTLED else "released"
            self.ledger.setdefault(job, []).append((kind, Decimal(entry.data["hours"])))

    def _job(self, entry: Entry) -> ReplayedJob | None:
        job = self.jobs.get(entry.subject)
        if job is None:
            self.strays.append(f"{entry.subject} {entry.type.rpartition(':')[2]}")
        return job

    # What the record says by itself ---------------------------------------------------------

    def _check_record(self, findings: Findings) -> None:
        for stray in self.strays:
            findings.compare(self.name, f"{stray}: its admission", "on the record", None)
        for job in self.jobs.values():
            self._check_job(job, findings)
        if not self.fleet_named_partitions:
            findings.note(
                "compute: fleet entries written before they named their partitions (older "
                "1): the audit knows the partitions jobs ran on and motions certified, and "
                "does not check that the facility lists no other"
            )

    def _check_job(self, job: ReplayedJob, findings: Findings) -> None:
        """A job ends once, is charged only if it ran and never more than it held, and the
        ledger closes its hold once: settled with the hours its end says, or released."""
        key = job.key
        findings.compare(self.name, f"{key} states after its end", [], job.after_end)
        if job.charged_hours is None:
            findings.compare(self.name, f"{key} hold closed before it ended", [], self._closes(key))
            return
        if not job.ran:
            findings.compare(self.name, f"{key} charged without running", ZERO, job.charged_hours)
        findings.compare(
            self.name,
            f"{key} charged at most the {job.reserved_hours} hours held",
            True,
            job.charged_hours <= job.reserved_hours,
        )
        used = job.elapsed_seconds and job.elapsed_seconds > 0
        expected = [("settled", job.charged_hours)] if used else [("released", ZERO)]
        findings.compare(
            self.name, f"{key} ledger lines closing its hold", expected, self._closes(key)
        )

    def _closes(self, key: str) -> list[tuple[str, Decimal]]:
        return self.ledger.get(key, [])

    # Against the facility -------------------------------------------------------------------

    def compare(self, published: Published, findings: Findings) -> None:
        self._check_record(findings)
        self._compare_fleet(published.json("/api/v1/fleet"), findings)
        if self.jobs:
            days = [job.admitted_on for job in self.jobs.values()]
            start, end = min(days), max(days) + timedelta(days=1)
            report = published.json("/api/v1/reports/jobs", start=start, end=end)
            self._compare_report(report["rows"], findings, f"jobs {start}..{end}")

    def _compare_fleet(self, fleet: dict[str, Any], findings: Findings) -> None:
        listed = {p["name"]: p["certified_level"] for p in fleet["partitions"]}
        if self.fleet_named_partitions:
            findings.compare(
                self.name, "the fleet's partitions", sorted(self.partitions), sorted(listed)
            )
        for name in sorted(self.partitions):
            findings.compare(
                self.name,
                f"partition {name} certified level",
                f"CL-{self.certified.get(name, 1)}",
                f"CL-{listed[name]}" if name in listed else None,
            )

    def report_rows(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The jobs report the record implies: per partition, level and state."""
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for job in self.jobs.values():
            row = rows.setdefault(
                (job.partition, job.level, job.state),
                {"jobs": 0, "ran": 0, "reserved_hours": ZERO, "charged_hours": ZERO},
            )
            row["jobs"] += 1
            row["ran"] += int(job.ran)
            row["reserved_hours"] += job.reserved_hours
            row["charged_hours"] += job.charged_hours or ZERO
        return rows

    def _compare_report(
        self, published_rows: list[dict[str, Any]], findings: Findings, period: str
    ) -> None:
        replayed = self.report_rows()
        said = {(r["partition"], r["level"], r["state"]): r for r in published_rows}
        empty = {"jobs": 0, "ran": 0, "reserved_hours": "0", "charged_hours": "0"}
        for group in sorted(replayed.keys() | said.keys()):
            mine = replayed.get(group, {**empty})
            theirs = said.get(group, empty)
            claim = f"{period} {'/'.join(group)}"
            for figure in ("jobs", "ran"):
                findings.compare(self.name, f"{claim} {figure}", mine[figure], theirs[figure])
            for figure in ("reserved_hours", "charged_hours"):
                findings.compare(
                    self.name,
                    f"{claim} {figure}",
                    _decimal(mine[figure]),
                    _decimal(theirs[figure]),
                )


def _level_number(label: str) -> int:
    return int(label.removeprefix("CL-"))


def _decimal(value: Any) -> Decimal | str:
    """Hours as a number, so "0.10" and "0.1" agree; what is not a number stays as said."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return str(value)
