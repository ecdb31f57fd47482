"""Compute tables: the fleet (sites, partitions, nodes) and jobs with their transitions and
the metrics they post while they run.

A partition is identical nodes at one site; its `certified_level` only rises by a council
motion (`certify_partition`). Capacity is summed from node rows, so a 100,000-accelerator
fleet is about 12,500 small rows that one indexed GROUP BY reads.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from commonlab.db import Base, UTCDateTime, utcnow

__all__ = ["Job", "JobMetric", "JobTransition", "Node", "Partition", "Site"]


class Site(Base):
    __tablename__ = "compute_sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Partition(Base):
    __tablename__ = "compute_partitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("compute_sites.id"), index=True)
    accelerator: Mapped[str] = mapped_column(String(32), index=True)
    accelerators_per_node: Mapped[int] = mapped_column(Integer)
    cpus_per_node: Mapped[int] = mapped_column(Integer)
    memory_gb_per_node: Mapped[int] = mapped_column(Integer)
    nodes_per_domain: Mapped[int] = mapped_column(Integer)
    # Raised only by a council motion; every partition may run open (CL-1) work.
    certified_level: Mapped[int] = mapped_column(Integer, default=1)
    certified_by_motion: Mapped[int | None] = mapped_column(Integer)
    # The partition's name in the executor (Slurm's PartitionName), when it differs.
    executor_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Node(Base):
    __tablename__ = "compute_nodes"
    __table_args__ = (Index("ix_compute_nodes_partition_state", "partition_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    partition_id: Mapped[int] = mapped_column(ForeignKey("compute_partitions.id"))
    domain: Mapped[int] = mapped_column(Integer)
    accelerators: Mapped[int] = mapped_column(Integer)
    cpus: Mapped[int] = mapped_column(Integer)
    memory_gb: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10), default="up")


class Job(Base):
    """One job: what was asked, where it was placed, what the executor did with it.

    `reservation_id` is the ledger line that holds its hours from admission until the end,
    when the one `settle` (or `release`) that closes it is written with the final state.
    """

    __tablename__ = "compute_jobs"
    __table_args__ = (Index("ix_compute_jobs_state_partition", "state", "partition_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    project: Mapped[str] = mapped_column(String(40), index=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocation_allocations.id"))
    submitter_id: Mapped[int] = mapped_column(ForeignKey("identity_people.id"), index=True)
    command: Mapped[str] = mapped_column(Text)
    env: Mapped[dict[str, str]] = mapped_column(JSON)
    inputs: Mapped[list[str]] = mapped_column(JSON)
    accelerator: Mapped[str] = mapped_column(String(32))
    accelerators: Mapped[int] = mapped_column(Integer)
    cpus: Mapped[int] = mapped_column(Integer)
    memory_gb: Mapped[int] = mapped_column(Integer)
    # On several nodes, accelerators, cpus and memory_gb are each node's.
    nodes: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    time_limit_minutes: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    partition_id: Mapped[int] = mapped_column(ForeignKey("compute_partitions.id"))
    executor: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(500), default="")
    # Set (and committed) before the executor is asked, so a crash between the executor's
    # answer and our commit is found again by name on restart instead of submitted twice.
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    executor_id: Mapped[str | None] = mapped_column(String(64))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("allocation_ledger.id"))
    reserved_hours: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    charged_hours: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    elapsed_seconds: Mapped[int | None] = mapped_column(Integer)
    resubmit_of: Mapped[int | None] = mapped_column(ForeignKey("compute_jobs.id"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def key(self) -> str:
        """The job's name in the record, the ledger and the executor."""
        return f"job/{self.id}"

    def spec(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "env": self.env,
            "accelerator": self.accelerator,
            "accelerators": self.accelerators,
            "nodes": self.nodes,
            "cpus": self.cpus,
            "memory_gb": self.memory_gb,
            "time_limit_minutes": self.time_limit_minutes,
        }


class JobTransition(Base):
    """A job's history, one row per state it entered (each also a record entry)."""

    __tablename__ = "compute_job_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("compute_jobs.id"), index=True)
    state: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobMetric(Base):
    """One value a job reported at one step of its work (a loss, a learning rate), keyed so
    that a step sent again replaces what was there. Private telemetry, never on the public
    record: it is high-volume and the project's own (the job's admission and end are)."""

    __tablename__ = "compute_job_metrics"

    job_id: Mapped[int] = mapped_column(ForeignKey("compute_jobs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Null where the job said it had no value at this step.
    value: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
