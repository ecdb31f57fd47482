"""The record entries the compute domain writes, and what each may say in clear.

The fleet, admissions and the hours they hold are public. A job's command and environment
are not, nor are the names of inputs that are not public: the public sees its public inputs
in clear and only a commitment to the others (`inputs_private`).
"""

from __future__ import annotations

from enum import StrEnum

from commonlab.compute.rules import JobState
from commonlab.record.fields import Fields, declare

__all__ = ["FIELDS", "ComputeEvent", "job_event"]


class ComputeEvent(StrEnum):
    FleetApplied = "compute:fleet:applied"
    PartitionCertified = "compute:partition:certified"
    NodeState = "compute:node:state"
    AccountsSynced = "compute:accounts:synced"
    FairshareAdjusted = "compute:fairshare:adjusted"
    SharesReclaimed = "compute:shares:reclaimed"
    JobAdmitted = "compute:job:admitted"
    JobQueued = "compute:job:queued"
    JobRunning = "compute:job:running"
    JobSucceeded = "compute:job:succeeded"
    JobFailed = "compute:job:failed"
    JobCancelRequested = "compute:job:cancel_requested"
    JobCancelled = "compute:job:cancelled"
    JobTimedOut = "compute:job:timed_out"
    JobRefused = "compute:job:refused"


def job_event(state: JobState) -> ComputeEvent:
    """Every job state has its own entry type: `compute:job:<state>`."""
    return ComputeEvent(f"compute:job:{state}")


def _job_state(what: str) -> Fields:
    # Every later state of a job says the same kinds of things (compute/service.py: _enter,
    # _finish); an end also its charged hours and elapsed seconds.
    return Fields("project", "reason", "charged_hours", "elapsed_seconds", "exit_code", about=what)


FIELDS = declare(
    ComputeEvent,
    {
        ComputeEvent.FleetApplied: Fields(
            "sites",
            "partitions",
            "accelerators",
            "nodes_added",
            "nodes_removed",
            "document_sha256",
            "local",
            "partition_names",
            about="the fleet is made to match a fleet document (or the local machine): its "
            "sites, partitions (by name), accelerators and nodes",
        ),
        ComputeEvent.PartitionCertified: Fields(
            "from",
            "to",
            "motion",
            about="a council motion certifies a partition for another containment level",
        ),
        ComputeEvent.NodeState: Fields(
            "from", "to", about="a node is drained, taken down or brought back"
        ),
        ComputeEvent.AccountsSynced: Fields(
            "changes",
            "drift",
            "force",
            "accounts",
            about="the executor's accounts are made to mirror projects and allocations",
        ),
        ComputeEvent.FairshareAdjusted: Fields(
            "window_days",
            "fairshare",
            "delivered_hours",
            "fair_hours",
            about="the share controller steers the executor's fair-share toward entitlements",
        ),
        ComputeEvent.SharesReclaimed: Fields(
            "caps",
            "requeued",
            "pinned",
            "targets",
            "held",
            about="the share controller caps member states at their fair split while another "
            "waits below its own (GrpTRES), lifts the caps when nobody does, requeues the "
            "jobs of states above it that lose the least work, and pins to the top of the "
            "queue the job Slurm holds room for when its state is at or under its target: "
            "each cap's from and to, each requeued and pinned job, and every state's target "
            "and holding in accelerators",
        ),
        ComputeEvent.JobAdmitted: Fields(
            "project",
            "allocation",
            "partition",
            "class",
            "accelerators",
            "nodes",
            "level",
            "reserved_hours",
            "inputs",
            "resubmit_of",
            private=("command", "env", "inputs_private"),
            about="a job is admitted: its project, allocation, partition, accelerator class "
            "and count (on each of its nodes), level and the hours held for it (its command "
            "and private inputs committed)",
        ),
        ComputeEvent.JobCancelRequested: Fields(
            "project", "state", about="someone asks a running or queued job to be cancelled"
        ),
        ComputeEvent.JobQueued: _job_state("a job joins the executor's queue"),
        ComputeEvent.JobRunning: _job_state("a job starts running"),
        ComputeEvent.JobSucceeded: _job_state(
            "a job ends well: the hours charged and the seconds it ran"
        ),
        ComputeEvent.JobFailed: _job_state(
            "a job ends with an error: the hours charged and the seconds it ran"
        ),
        ComputeEvent.JobCancelled: _job_state(
            "a job is cancelled: the hours charged (none if it never ran)"
        ),
        ComputeEvent.JobTimedOut: _job_state(
            "a job is stopped at its time limit: the hours charged and the seconds it ran"
        ),
        ComputeEvent.JobRefused: _job_state(
            "the executor refuses a job: nothing is charged, its hold is released"
        ),
    },
)
